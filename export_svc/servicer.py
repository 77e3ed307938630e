"""ExportService gRPC servicer: converts between protobuf and the domain, nothing else."""

from __future__ import annotations

import grpc

from export_svc.exports import Download, ExportService
from export_svc.models import EXPORT_STATES, FAILED, READY
from export_svc.repository import ExportRecord
from glimpse.export.v1 import export_pb2, export_pb2_grpc
from mesh.identity import caller_id

# The wire names are ours with the enum's prefix; a state missing from the proto fails at import.
_STATE = {state: export_pb2.ExportState.Value(f"EXPORT_STATE_{state}") for state in EXPORT_STATES}


def export_message(record: ExportRecord, download: Download | None) -> export_pb2.Export:
    message = export_pb2.Export(
        id=record.id,
        user_id=record.user_id,
        state=_STATE[record.state],
        attempts=record.attempts,
        # A retried attempt's error stays internal until the export has FAILED.
        failure_reason=(record.failure_reason or "") if record.state == FAILED else "",
        size_bytes=(record.size_bytes or 0) if record.state == READY else 0,
    )
    message.create_time.FromDatetime(record.created_at)
    message.update_time.FromDatetime(record.updated_at)
    message.expire_time.FromDatetime(record.expire_at)
    if download is not None:
        message.download_url = download.url
        message.download_expire_time.FromDatetime(download.expires_at)
    return message


class ExportServicer(export_pb2_grpc.ExportServiceServicer):
    def __init__(self, exports: ExportService) -> None:
        self._exports = exports

    async def CreateExport(
        self, request: export_pb2.CreateExportRequest, context: grpc.aio.ServicerContext
    ) -> export_pb2.Export:
        return export_message(await self._exports.create(caller_id(context), request.request_id), None)

    async def GetExport(
        self, request: export_pb2.GetExportRequest, context: grpc.aio.ServicerContext
    ) -> export_pb2.Export:
        record, download = await self._exports.get(caller_id(context), request.export_id)
        return export_message(record, download)
