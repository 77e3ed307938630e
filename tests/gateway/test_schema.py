"""The live gateway, with the real services behind it, against its own OpenAPI document, fuzzed by
schemathesis: no input may cause a 5xx, and every response must be as documented."""

from __future__ import annotations

import asyncio

from tests.gateway.conformance import fuzz


async def test_every_operation_conforms_to_the_openapi_document(http, gateway_url, make_account):
    account = await make_account()
    spec = (await http.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    failures = await asyncio.to_thread(fuzz, spec, gateway_url, account.headers)
    assert not failures, "\n\n".join(failures)
