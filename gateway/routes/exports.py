"""Data exports (the right to portability): ask for a zip of your data and download it when ready.
export_svc owns them and builds each zip in the background; the gateway passes the caller's id and
renders the answer."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Response, status
from pydantic import Field

from gateway import rate_limits
from gateway.auth import CallerId
from gateway.fields import ExportId
from gateway.resources import Resource, error_responses
from gateway.upstream import Services
from glimpse.export.v1 import export_pb2
from mesh.identity import as_caller

router = APIRouter(tags=["exports"])

ExportStateName = Literal["PENDING", "RUNNING", "READY", "FAILED", "EXPIRED"]


class Export(Resource):
    export_id: str = Field(description="64-bit export id, as a decimal string.", examples=["7240392310784001"])
    state: ExportStateName = Field(
        description="PENDING (requested), RUNNING (being built; a failed attempt is retried with backoff), "
        "READY (download it from download_url), FAILED (see failure_reason; request a new export) or "
        "EXPIRED (past expire_time: the zip is deleted)."
    )
    attempts: int = Field(description="Build attempts started so far (at most 5).")
    failure_reason: str | None = Field(description="FAILED: why, in words you can act on; otherwise null.")
    size_bytes: int | None = Field(description="READY: the zip's size in bytes; otherwise null.")
    download_url: str | None = Field(
        description="READY: a signed GET URL of the zip, working for 15 minutes (download_expire_time); "
        "ask again for a fresh one. The zip holds README.txt (what every file holds), profile.json, "
        "posts.json, comments.json, likes.json, saves.json, followers.json, following.json, blocks.json, "
        "mutes.json, stories.json and media/<media_id>.<ext>, your original photos. Otherwise null."
    )
    download_expire_time: str | None = Field(description="RFC 3339: when download_url stops working.")
    create_time: str = Field(description="RFC 3339: when it was requested.")
    update_time: str = Field(description="RFC 3339: its last change of state.")
    expire_time: str = Field(description="RFC 3339: 7 days after create_time; the zip is deleted then.")


ExportKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        description="Any unique string per new export; retrying with the same key returns the same export.",
    ),
]


def _export_json(export: export_pb2.Export) -> dict[str, Any]:
    ready = export.state == export_pb2.EXPORT_STATE_READY
    return {
        "export_id": str(export.id),
        "state": export_pb2.ExportState.Name(export.state).removeprefix("EXPORT_STATE_"),
        "attempts": export.attempts,
        "failure_reason": export.failure_reason or None,
        "size_bytes": export.size_bytes if ready else None,
        "download_url": export.download_url or None,
        "download_expire_time": export.download_expire_time.ToJsonString() if export.download_url else None,
        "create_time": export.create_time.ToJsonString(),
        "update_time": export.update_time.ToJsonString(),
        "expire_time": export.expire_time.ToJsonString(),
    }


@router.post(
    "/v1/users/me/exports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Export,
    summary="Request an export of your data",
    response_description="The export, PENDING: poll its Location until it is READY.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.post_changes],
)
async def create_export(
    caller: CallerId, services: Services, response: Response, idempotency_key: ExportKey = ""
) -> dict[str, Any]:
    """Starts building a zip of everything you put into Glimpse. While one of your exports is PENDING
    or RUNNING, that one is returned instead of starting another. 429 (EXPORT_LIMIT) after 3 exports
    in 24 hours (failed ones not counted)."""
    # Without the client's key, a key of our own still makes the channel's retries safe (mesh.channels).
    request = export_pb2.CreateExportRequest(request_id=idempotency_key or str(uuid.uuid4()))
    export = await services.export.CreateExport(request, timeout=services.timeout, metadata=as_caller(caller))
    response.headers["Location"] = f"/v1/users/me/exports/{export.id}"
    return _export_json(export)


@router.get(
    "/v1/users/me/exports/{export_id}",
    response_model=Export,
    summary="One of your exports",
    response_description="Its state and, when READY, a download URL working for 15 minutes.",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.user_reads],
)
async def get_export(export_id: ExportId, caller: CallerId, services: Services) -> dict[str, Any]:
    """404 (EXPORT_NOT_FOUND) for an id that is not one of your exports."""
    export = await services.export.GetExport(
        export_pb2.GetExportRequest(export_id=export_id), timeout=services.timeout, metadata=as_caller(caller)
    )
    return _export_json(export)
