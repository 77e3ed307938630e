"""A user's erasure (`graph.user_deleted`) takes their exports with it: the rows, the zips and any
upload still open; a repeated event changes nothing."""

from __future__ import annotations

import asyncio

from export_svc.storage import user_prefix, zip_key
from glimpse.events.v1 import events_pb2
from glimpse.export.v1 import export_pb2
from mesh.ids import IdGenerator
from tests.export_svc.conftest import run_sql, settled

ids = IdGenerator(8190)


async def test_user_deleted_erases_exports_rows_and_zips(exports, store, sql, bus, make_account):
    ada, bob = await make_account(), await make_account()
    mine = await exports.CreateExport(export_pb2.CreateExportRequest(request_id="x"), metadata=ada.metadata)
    theirs = await exports.CreateExport(export_pb2.CreateExportRequest(request_id="x"), metadata=bob.metadata)
    for account, export in ((ada, mine), (bob, theirs)):
        assert (await settled(exports, account, export.id)).state == export_pb2.EXPORT_STATE_READY
    # An upload left open under the user's prefix (a build that died) goes too.
    stray = zip_key(ada.id, ids.next_id())
    await store.start_upload(stray)

    for _ in range(2):  # at-least-once: a second delivery finds nothing left
        await bus.publish_event(events_pb2.UserDeleted(event_id=ids.next_id(), user_id=ada.id))
    count = "SELECT count(*) FROM exports.exports WHERE user_id = :u"
    deadline = asyncio.get_running_loop().time() + 30
    while (await run_sql(sql, count, u=ada.id))[0][0]:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)
    assert await store.size(zip_key(ada.id, mine.id)) is None
    assert await store.open_uploads(stray) == []
    assert await store.delete_under(user_prefix(ada.id)) == 0
    # Nobody else's.
    assert (await run_sql(sql, count, u=bob.id))[0][0] == 1
    assert await store.size(zip_key(bob.id, theirs.id)) is not None
