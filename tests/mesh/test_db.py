"""mesh.db on a real PostgreSQL: one unit of work commits or leaves nothing, reads see what they
should, statements compiled once take their parameters as SQLAlchemy would, and the pool survives
connections that die or are left mid-query."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    MetaData,
    Table,
    Text,
    any_,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB

from mesh.db import OUTBOX_WRITTEN, Database, Statement
from mesh.errors import Unavailable
from mesh.migrate import drop_database, ensure_database
from tests.conftest import fresh_database_url

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("tags", ARRAY(Text), nullable=False, server_default="{}"),
    Column("doc", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
)

_INSERT = Statement(
    insert(items)
    .values(id=bindparam("id"), name=bindparam("name"), tags=bindparam("tags"), doc=bindparam("doc"))
    .returning(items.c.id, items.c.name, items.c.tags, items.c.doc)
)
_BY_IDS = Statement(
    select(items.c.id, items.c.name).where(items.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
)


@pytest.fixture
async def url() -> AsyncIterator[str]:
    url = fresh_database_url(f"db_{uuid.uuid4().hex[:6]}")
    await asyncio.to_thread(ensure_database, url)
    yield url
    await asyncio.to_thread(drop_database, url)


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:
    database = Database(url, pool_size=2)
    async with database.unit_of_work() as session:
        await session.execute(
            text(
                "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL UNIQUE, "
                "tags text[] NOT NULL DEFAULT '{}', doc jsonb NOT NULL DEFAULT '{}')"
            )
        )
    try:
        yield database
    finally:
        await database.dispose()


async def names(db: Database) -> list[str]:
    async with db.read_only() as session:
        return (await session.execute(select(items.c.name).order_by(items.c.id))).scalars()


async def test_a_unit_of_work_commits_all_or_nothing(db):
    async with db.unit_of_work() as session:
        row = (await session.execute(_INSERT, {"id": 1, "name": "a%b", "tags": ["x", "y"], "doc": {"k": [1]}})).one()
    assert (row.id, row[1], row._mapping["tags"], row.doc) == (1, "a%b", ["x", "y"], {"k": [1]})

    with pytest.raises(RuntimeError):
        async with db.unit_of_work() as session:
            await session.execute(_INSERT, {"id": 2, "name": "b", "tags": [], "doc": {}})
            raise RuntimeError("the request failed after its first write")
    assert await names(db) == ["a%b"]


async def test_a_unit_of_work_that_is_not_atomic_commits_each_statement(db):
    with pytest.raises(RuntimeError, match="the request failed"):
        async with db.unit_of_work(atomic=False) as session:
            await session.execute(_INSERT, {"id": 1, "name": "kept", "tags": [], "doc": {}})
            raise RuntimeError("the request failed after its one write")
    assert await names(db) == ["kept"]
    with pytest.raises(RuntimeError, match="outbox"):
        async with db.unit_of_work(atomic=False) as session:
            session.info[OUTBOX_WRITTEN] = True


async def test_core_statements_compiled_per_call_take_values_and_lists(db):
    async with db.unit_of_work() as session:
        await session.execute(insert(items), [{"id": n, "name": f"n{n}"} for n in range(1, 4)])
        # A literal '%' next to parameters, and an IN list rendered for this call.
        found = await session.execute(
            select(items.c.id).where(items.c.id.in_([1, 3]), items.c.name.like("n%")).order_by(items.c.id)
        )
        assert found.scalars() == [1, 3]
        changed = await session.execute(update(items).where(items.c.id > 1).values(tags=["t"]))
        assert changed.rowcount == 2
    async with db.read_only() as session:
        assert sorted((await session.execute(_BY_IDS, {"ids": [2, 3, 9]})).all()) == [(2, "n2"), (3, "n3")]
        assert (await session.execute(select(func.count()).select_from(items))).scalar_one() == 3


async def test_statements_refuse_what_they_cannot_run():
    with pytest.raises(ValueError, match="any_"):
        Statement(select(items.c.id).where(items.c.id.in_([1, 2])))
    with pytest.raises(KeyError, match="name"):
        _INSERT.values({"id": 1, "tags": [], "doc": {}})


async def test_a_savepoint_undoes_only_its_own_statements(db):
    async with db.unit_of_work() as session:
        await session.execute(_INSERT, {"id": 1, "name": "taken", "tags": [], "doc": {}})
        with pytest.raises(psycopg.errors.UniqueViolation) as caught:
            async with session.begin_nested():
                await session.execute(_INSERT, {"id": 2, "name": "taken", "tags": [], "doc": {}})
        assert caught.value.diag.constraint_name == "items_name_key"
        await session.execute(_INSERT, {"id": 3, "name": "free", "tags": [], "doc": {}})
    assert await names(db) == ["taken", "free"]


async def test_reads_without_a_transaction_and_in_one_snapshot(db):
    async with db.unit_of_work() as session:
        await session.execute(_INSERT, {"id": 1, "name": "first", "tags": [], "doc": {}})
    setting = text("SELECT set_config('application_name', 'inside', true), current_setting('application_name')")
    async with db.read_only() as session:
        # A transaction: a transaction-local setting holds until it ends.
        await session.execute(setting)
        assert (await session.execute(text("SELECT current_setting('application_name')"))).scalar() == "inside"
    async with db.read_only(transaction=False) as session:
        assert (await session.execute(text("SELECT now() = statement_timestamp()"))).scalar() is True

    async def add_second() -> None:
        async with db.unit_of_work() as other:
            await other.execute(_INSERT, {"id": 2, "name": "second", "tags": [], "doc": {}})

    async with db.read_only(one_snapshot=True) as session:
        assert len((await session.execute(select(items.c.id))).all()) == 1
        await add_second()
        assert len((await session.execute(select(items.c.id))).all()) == 1, "the first statement's snapshot"
    async with db.read_only() as session:
        assert len((await session.execute(select(items.c.id))).all()) == 2


async def test_outbox_listeners_run_after_commits_that_wrote_events(db):
    woken: list[str] = []
    db.on_outbox_commit(lambda: woken.append("relay"))
    async with db.unit_of_work() as session:
        await session.execute(select(items.c.id))
    assert woken == []
    async with db.unit_of_work() as session:
        session.info[OUTBOX_WRITTEN] = True
    assert woken == ["relay"]
    with pytest.raises(RuntimeError):
        async with db.unit_of_work() as session:
            session.info[OUTBOX_WRITTEN] = True
            raise RuntimeError("rolled back: nothing to relay")
    assert woken == ["relay"]


async def test_a_connection_killed_by_the_server_costs_one_unavailable(db, url):
    """No ping per checkout: the first use of a dead connection fails as UNAVAILABLE (retryable), and
    drops the other idle ones, so the next unit of work connects afresh and succeeds."""
    async with db.read_only() as a, db.read_only() as b:  # two pooled connections
        pids = [(await s.execute(text("SELECT pg_backend_pid()"))).scalar() for s in (a, b)]
    # From outside the pool, as an operator (or a failover) would.
    async with await psycopg.AsyncConnection.connect(url.replace("+psycopg", ""), autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [pids])
    with pytest.raises(Unavailable):
        async with db.read_only() as session:
            await session.execute(text("SELECT 1"))
    async with db.read_only() as session:
        assert (await session.execute(text("SELECT pg_backend_pid()"))).scalar() not in pids


async def test_a_query_cancelled_midway_leaves_no_busy_connection_behind(db):
    async def slow() -> None:
        async with db.read_only() as session:
            await session.execute(text("SELECT pg_sleep(5)"))

    task = asyncio.create_task(slow())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(3):
        for _ in range(4):  # more than the pool keeps: every one of them answers at once
            async with db.unit_of_work() as session:
                assert (await session.execute(text("SELECT 1"))).scalar() == 1


async def test_an_unreachable_database_is_unavailable():
    db = Database("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", pool_size=1)
    with pytest.raises(Unavailable) as caught:
        async with db.unit_of_work():
            pass
    assert caught.value.reason == "DATABASE_UNAVAILABLE"
    await db.dispose()
