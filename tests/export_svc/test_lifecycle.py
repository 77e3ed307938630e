"""An export's life after it is built: EXPIRED at its expiry (no URL, whether or not the sweeper has
run), its zip deleted by the sweeper; at most 3 exports a day (failed ones not counted)."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
import pytest

from export_svc.storage import zip_key
from export_svc.sweeper import Sweeper
from glimpse.export.v1 import export_pb2
from mesh.db import Database
from tests.export_svc.conftest import run_sql, settled


async def test_an_expired_export_has_no_url_and_the_sweeper_deletes_its_zip(
    exports, store, sql, make_account, export_settings
):
    ada = await make_account()
    created = await exports.CreateExport(export_pb2.CreateExportRequest(request_id="e1"), metadata=ada.metadata)
    export = await settled(exports, ada, created.id)
    assert export.state == export_pb2.EXPORT_STATE_READY and export.download_url
    assert export.expire_time.ToDatetime(dt.UTC) - export.create_time.ToDatetime(dt.UTC) == dt.timedelta(days=7)
    key = zip_key(ada.id, created.id)
    assert await store.size(key) == export.size_bytes

    await run_sql(
        sql, "UPDATE exports.exports SET expire_at = now() - interval '1 second' WHERE id = :id", id=created.id
    )
    expired = await exports.GetExport(export_pb2.GetExportRequest(export_id=created.id), metadata=ada.metadata)
    assert expired.state == export_pb2.EXPORT_STATE_EXPIRED and not expired.download_url
    assert await store.size(key) == export.size_bytes  # the sweeper has not run yet

    db = Database(export_settings.database_url, pool_size=1)
    try:
        sweeper = Sweeper(db, store, interval=dt.timedelta(hours=1), batch_size=100)
        assert await sweeper.sweep() >= 1
        assert await sweeper.sweep() == 0  # nothing left to do
    finally:
        await db.dispose()
    assert await store.size(key) is None
    rows = await run_sql(sql, "SELECT state, object_key FROM exports.exports WHERE id = :id", id=created.id)
    assert [tuple(r) for r in rows] == [("EXPIRED", None)]


async def test_three_exports_a_day_then_429_failed_ones_not_counted(http, exports, sql, make_account):
    ada = await make_account()
    for n in range(3):
        created = await exports.CreateExport(
            export_pb2.CreateExportRequest(request_id=f"limit-{n}"), metadata=ada.metadata
        )
        assert (await settled(exports, ada, created.id)).state == export_pb2.EXPORT_STATE_READY
        if n == 0:  # one of them failed: it does not count
            await run_sql(sql, "UPDATE exports.exports SET state = 'FAILED' WHERE id = :id", id=created.id)
    third = await http.post("/v1/users/me/exports", headers=ada.headers)
    assert third.status_code == 202, third.text
    await settled(exports, ada, int(third.json()["export_id"]))
    refused = await http.post("/v1/users/me/exports", headers=ada.headers)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["details"][0]["reason"] == "EXPORT_LIMIT"
    error = refused.json()["error"]
    assert "3 exports in 24 hours" in error["message"]
    again = dt.datetime.fromisoformat(error["details"][0]["metadata"]["retry_after_time"])
    assert dt.timedelta(hours=23) < again - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=24)
    assert error["details"][0]["metadata"]["retry_after_time"] in error["message"]
    # An old request leaves the window.
    await run_sql(
        sql, "UPDATE exports.exports SET created_at = now() - interval '25 hours' WHERE user_id = :u", u=ada.id
    )
    assert (await http.post("/v1/users/me/exports", headers=ada.headers)).status_code == 202


async def test_bad_requests_name_the_field(exports, make_account):
    ada = await make_account()
    with pytest.raises(grpc.aio.AioRpcError) as bad_id:
        await exports.GetExport(export_pb2.GetExportRequest(export_id=0), metadata=ada.metadata)
    assert bad_id.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "export_id" in (bad_id.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as long_key:
        await exports.CreateExport(export_pb2.CreateExportRequest(request_id="k" * 129), metadata=ada.metadata)
    assert long_key.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "request_id" in (
        long_key.value.details() or ""
    )
    with pytest.raises(grpc.aio.AioRpcError) as nobody:
        await exports.CreateExport(export_pb2.CreateExportRequest())
    assert nobody.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_concurrent_requests_start_one_export(exports, sql, make_account):
    ada = await make_account()
    requests = [export_pb2.CreateExportRequest(request_id=f"race-{n}") for n in range(6)]
    created = await asyncio.gather(*(exports.CreateExport(r, metadata=ada.metadata) for r in requests))
    ids = {export.id for export in created}
    assert len(ids) == 1, ids
    rows = await run_sql(sql, "SELECT count(*) FROM exports.exports WHERE user_id = :u", u=ada.id)
    assert rows[0][0] == 1
    assert (await settled(exports, ada, ids.pop())).state == export_pb2.EXPORT_STATE_READY
