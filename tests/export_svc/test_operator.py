"""The operator's view of export_svc: reflection and health, and an export read with grpcurl as its
owner (x-user-id), as README shows."""

from __future__ import annotations

import asyncio
import json

from glimpse.export.v1 import export_pb2
from tests.conftest import grpcurl
from tests.export_svc.conftest import settled


async def test_grpcurl_lists_describes_and_reads_an_export(export_addr, exports, make_account):
    ada = await make_account()
    listed = await asyncio.to_thread(grpcurl, export_addr, "list")
    assert listed.returncode == 0, listed.stderr
    assert {"glimpse.export.v1.ExportService", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    health = await asyncio.to_thread(grpcurl, export_addr, "grpc.health.v1.Health/Check")
    assert json.loads(health.stdout) == {"status": "SERVING"}

    created = await exports.CreateExport(export_pb2.CreateExportRequest(request_id="op"), metadata=ada.metadata)
    await settled(exports, ada, created.id)
    body = json.dumps({"export_id": str(created.id)})
    read = await asyncio.to_thread(
        grpcurl, "-H", f"x-user-id: {ada.id}", "-d", body, export_addr, "glimpse.export.v1.ExportService/GetExport"
    )
    assert read.returncode == 0, read.stderr
    answer = json.loads(read.stdout)
    assert answer["state"] == "EXPORT_STATE_READY" and answer["download_url"].startswith("http")
