"""Fuzzes a live gateway from its own OpenAPI document with schemathesis and collects what breaks.

Schemathesis calls are blocking (requests), and the gateway under test runs on the test's event loop,
so `fuzz` is meant to run in a worker thread (`asyncio.to_thread`).
"""

from __future__ import annotations

from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, GenerationMode, checks
from schemathesis.core.failures import FailureGroup

# Enough to reach every parameter of a small operation, few enough for the whole run to stay well
# under a minute; derandomized so a failure reproduces on the next run.
MAX_EXAMPLES = 20

# No 5xx, and every response as documented: its status, content type, headers and body schema; and
# input that breaks the schema is refused with a 4xx.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]

# How long an event stream is read (see _fuzz_operation).
STREAM_READ_SECONDS = 1.0

# 503 is what /readyz is for while an upstream is down; it must still be in the documented shape.
SERVER_ERRORS_DOCUMENTED = {("GET", "/readyz")}
# Operations that can end the signed-in user's session (log out; deletion, should a generated
# password ever match): fuzzed last, so every other operation runs signed in.
ENDS_THE_SESSION = {("DELETE", "/v1/sessions/current"), ("DELETE", "/v1/users/me")}


def fuzz(spec: dict[str, Any], base_url: str, headers: dict[str, str]) -> list[str]:
    """Runs every operation on valid and on invalid input, sending `headers` (a signed-in user's token)
    with each request. Returns one report per failing operation and mode."""
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    with requests.Session() as session:
        operations = [result.ok() for result in schema.get_all_operations()]
        operations.sort(key=lambda op: (op.method.upper(), op.path) in ENDS_THE_SESSION)
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _fuzz_operation(operation, mode, session, base_url, headers)
                except Unsatisfiable:
                    # Nothing in the operation can be made invalid (no parameters, or only free text).
                    assert mode is GenerationMode.NEGATIVE, operation.label
                # A FailureGroup is a BaseExceptionGroup: several checks failed on one response.
                except (FailureGroup, Exception) as exc:  # noqa: BLE001 - every failure is reported together
                    failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures


def _fuzz_operation(
    operation: APIOperation, mode: GenerationMode, session: requests.Session, base_url: str, headers: dict[str, str]
) -> None:
    documented_5xx = (operation.method.upper(), operation.path) in SERVER_ERRORS_DOCUMENTED
    excluded = [checks.not_a_server_error] if documented_5xx else []
    # An event stream never ends by itself: its first events come at once, then it idles (a
    # heartbeat every 15 s), so a short read timeout is where its response ends.
    timeout = STREAM_READ_SECONDS if _is_event_stream(operation) else 10

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(mode))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=base_url,
            session=session,
            headers=headers,
            checks=CHECKS,
            excluded_checks=excluded,
            timeout=timeout,
        )

    run()


def _is_event_stream(operation: APIOperation) -> bool:
    return any(
        "text/event-stream" in (response.get("content") or {})
        for response in operation.definition.raw.get("responses", {}).values()
    )
