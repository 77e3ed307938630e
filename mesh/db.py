"""PostgreSQL access: one connection pool per process and one unit of work per request or message.

Only `Database.unit_of_work` commits. Code inside it runs statements; if it raises, everything is
rolled back, so a failed request leaves no half-written state.

Statements are written with SQLAlchemy Core (the tables live in each service's models.py) and run
straight on psycopg connections: no ORM session, no greenlet bridge, no ping per checkout.
`python -m bench db_path` prints the CPU per unit of work in the calling process beside psycopg
alone; on this machine kind (2 cores, loopback PostgreSQL, other work running):

    3-statement write transaction   SQLAlchemy AsyncSession 2.06 ms, AsyncConnection 2.18 ms;
                                    here 0.71 ms (1.6 ms compiled per call); psycopg alone 0.62 ms
    1-row read                      AsyncSession 1.16 ms, AsyncConnection 1.01 ms; here 0.37 ms
                                    (0.17 ms without a transaction); psycopg alone 0.12 ms

Compiling a Core statement costs more than running it, so a statement that runs on every request
is compiled once, at import (`Statement`); any other is compiled each time it runs, which costs
about what SQLAlchemy's own execution did.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from mesh.errors import Unavailable

# Set in `Session.info` by code that wrote outbox rows, so the relay is woken right after commit.
OUTBOX_WRITTEN = "outbox_written"
log = logging.getLogger("mesh.db")

_DIALECT = psycopg_dialect()
# Connections older than this are closed instead of reused (load balancers and poolers drop old ones).
_RECYCLE_SECONDS = 1800.0
# How long a unit of work waits for a free connection when all `2 * pool_size` are in use.
_WAIT_SECONDS = 30.0
# Connections beyond `pool_size` are closed once idle this long, not at once: closing them as soon
# as a burst ends made every burst pay a new connection (and a new server process) per request.
# Short, because every process's extra connections count against the server's max_connections.
_IDLE_EXTRA_SECONDS = 5.0
_CONNECT_TIMEOUT_SECONDS = 10


class Statement:
    """A statement compiled for psycopg once. Build the statements a service runs on every request at
    import time, with `bindparam("name")` where values go, and pass the values to `Session.execute`:

        _GET_POST = Statement(select(*_COLUMNS).where(posts.c.id == bindparam("id")))
        row = (await session.execute(_GET_POST, {"id": post_id})).one_or_none()

    A list parameter compares with `column == any_(bindparam("ids", type_=ARRAY(BigInteger)))`
    (`in_` renders one placeholder per element, so it cannot be compiled ahead). Plain SQL text is
    taken as psycopg's `%(name)s` style. ValueError at construction for an `in_` parameter; KeyError
    at execution when a parameter without a value is not given.
    """

    __slots__ = ("_defaults", "_processors", "_query", "_required", "sql")

    def __init__(
        self, clause: ClauseElement | str, *, _per_call: bool = False, _column_keys: list[str] | None = None
    ) -> None:
        if isinstance(clause, str):
            self.sql = clause
            self._query = clause.encode()
            self._defaults: dict[str, Any] = {}
            self._required: frozenset[str] = frozenset()
            self._processors: dict[str, Callable[[Any], Any]] = {}
            return
        # Per call, `in_` lists are rendered into the text (one placeholder each). `_column_keys`:
        # the columns an INSERT without values() names (those of the rows given, as SQLAlchemy does).
        compiled = cast(
            SQLCompiler,
            clause.compile(
                dialect=_DIALECT, column_keys=_column_keys, compile_kwargs={"render_postcompile": _per_call}
            ),
        )
        self.sql = compiled.string
        # Bytes once: psycopg would encode the text and hash it again on every execution.
        self._query = self.sql.encode()
        required = set()
        processors: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            if bind.expanding and not _per_call:
                raise ValueError(f"{name}: an IN list cannot be compiled ahead; compare with any_() and an ARRAY bind")
            if bind.required:
                required.add(name)
            processor = bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
            if processor is not None:
                processors[name] = processor
        self._required = frozenset(required)
        self._processors = processors
        self._defaults = {
            name: processors[name](value) if name in processors and value is not None else value
            for name, value in compiled.params.items()
            if name not in required
        }

    def values(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """The parameters psycopg gets: the statement's own values, then `params` (each through its
        type's conversion, e.g. JSON)."""
        given = params or {}
        missing = self._required.difference(given)
        if missing:
            raise KeyError(f"no value for {', '.join(sorted(missing))} in {self.sql[:80]!r}")
        out = dict(self._defaults)
        processors = self._processors
        for name, value in given.items():
            processor = processors.get(name)
            out[name] = processor(value) if processor is not None and value is not None else value
        return out

    def __repr__(self) -> str:
        return f"Statement({self.sql!r})"


class Result:
    """The rows a statement returned (all fetched), with SQLAlchemy's Result methods that the
    repositories use. Rows are named tuples: `row.id`, `row[0]`, `row._mapping["id"]`."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        # Rows inserted, updated or deleted (or returned by a SELECT).
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any | None:
        return self._rows[0] if self._rows else None

    def one_or_none(self) -> Any | None:
        if len(self._rows) > 1:
            raise LookupError(f"expected at most one row, got {len(self._rows)}")
        return self.first()

    def one(self) -> Any:
        if len(self._rows) != 1:
            raise LookupError(f"expected exactly one row, got {len(self._rows)}")
        return self._rows[0]

    def scalar(self) -> Any | None:
        """The first column of the first row; None without rows."""
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any | None:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalars(self) -> list[Any]:
        """The first column of every row."""
        return [row[0] for row in self._rows]


class Session:
    """One pooled connection, inside a transaction (`Database.unit_of_work`) or not
    (`Database.read_only`: each statement sees what was committed when it started)."""

    __slots__ = ("_conn", "_cursor", "info")

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn
        self._cursor = conn.cursor()
        # Per unit of work, for code that must tell the committer something (OUTBOX_WRITTEN).
        self.info: dict[str, Any] = {}

    async def execute(
        self,
        statement: Statement | ClauseElement | str,
        params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    ) -> Result:
        """Runs a Statement, or a Core statement compiled for this call (`params` fill its
        `bindparam`s or `:name`s), and fetches every row it returns. A list of parameter sets runs
        the statement once per set (no rows returned; `rowcount` is the total)."""
        cursor = self._cursor
        if isinstance(params, Sequence):
            if not isinstance(statement, Statement):
                keys = list(params[0]) if params else None
                statement = Statement(statement, _per_call=True, _column_keys=keys)
            await cursor.executemany(statement._query, [statement.values(one) for one in params])
            return Result([], cursor.rowcount)
        if not isinstance(statement, Statement):
            statement = Statement(statement, _per_call=True)
        # Always a mapping, so "%%" in the compiled text is read as "%".
        await cursor.execute(statement._query, statement.values(params))
        rows = await cursor.fetchall() if cursor.description is not None else []
        return Result(rows, cursor.rowcount)

    @contextlib.asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        """A savepoint: if the block raises, only its statements are undone and the unit of work
        goes on (e.g. after a unique violation the caller turns into a domain error)."""
        async with self._conn.transaction():
            yield


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        """`url`: a SQLAlchemy-style URL (postgresql+psycopg://...) or a libpq one. At most
        2 * `pool_size` connections are open at once; those beyond `pool_size` close after 5 s unused."""
        self._pool = _Pool(_libpq_url(url), keep=pool_size, limit=2 * pool_size)
        self._outbox_listeners: list[Callable[[], None]] = []
        self._commit_hooks: list[Callable[[dict[str, Any]], Awaitable[None]]] = []

    def on_outbox_commit(self, listener: Callable[[], None]) -> None:
        """Calls `listener` after each commit that wrote outbox rows (the relay's wake-up)."""
        self._outbox_listeners.append(listener)

    def after_commit(self, hook: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """Awaits `hook(session.info)` after each unit of work that committed, before the block's caller
        goes on (e.g. dropping cache entries the change made stale, so the caller's next read sees it).
        The change is durable by then: a hook that raises is logged, never raised to the caller, and
        whatever it was for must tolerate a missed call (a cache's own expiry, say)."""
        self._commit_hooks.append(hook)

    @contextlib.asynccontextmanager
    async def unit_of_work(self, *, atomic: bool = True) -> AsyncIterator[Session]:
        """A session in a transaction (READ COMMITTED), committed when the block ends and rolled
        back if it raises.

        `atomic=False`: no transaction, each statement commits as it completes (no BEGIN and COMMIT:
        two round trips, ~0.2 ms of CPU here). Only for work whose one
        write stands alone, such as an idempotency key's reservation; never for outbox rows
        (RuntimeError once the block ends, as their change did not commit with them).

        Raises Unavailable when the database cannot be reached (or every connection stays busy for
        30 s), so clients see UNAVAILABLE (retry) rather than INTERNAL.
        """
        with _unavailable_when_unreachable():
            async with self._pool.connection() as conn:
                if atomic:
                    async with conn.transaction():
                        session = Session(conn)
                        yield session
                else:
                    session = Session(conn)
                    yield session
        if session.info.get(OUTBOX_WRITTEN):
            if not atomic:
                raise RuntimeError("outbox rows were written outside a transaction")
            for listener in self._outbox_listeners:
                listener()
        for hook in self._commit_hooks:
            try:
                # Shielded: a caller cancelled now still gets the hook run (its change is committed).
                await asyncio.shield(hook(session.info))
            except Exception:
                log.exception("after-commit hook failed; the change is committed")

    @contextlib.asynccontextmanager
    async def read_only(self, *, one_snapshot: bool = False, transaction: bool = True) -> AsyncIterator[Session]:
        """A session for reads, in a transaction that is rolled back: nothing is committed.

        Each statement sees what was committed when it started (READ COMMITTED), unless
        `one_snapshot`: then every statement reads the snapshot of the first (REPEATABLE READ).
        `transaction=False` skips BEGIN and ROLLBACK (two round trips, ~0.2 ms of CPU here) for
        reads that need nothing of a transaction: no transaction-local setting (set_config(...,
        true), SET LOCAL), lock or snapshot. Unavailable as unit_of_work."""
        with _unavailable_when_unreachable():
            async with self._pool.connection() as conn:
                if not transaction and not one_snapshot:
                    yield Session(conn)
                    return
                level = "REPEATABLE READ" if one_snapshot else "READ COMMITTED"
                await conn.execute(f"BEGIN ISOLATION LEVEL {level}")
                try:
                    yield Session(conn)
                finally:
                    # A connection that cannot roll back is not idle, so the pool closes it.
                    with contextlib.suppress(psycopg.Error):
                        await conn.execute("ROLLBACK")

    async def dispose(self) -> None:
        """Closes the idle connections; those in use close when their unit of work ends."""
        await self._pool.close()


class _Pool:
    """Open connections kept between units of work: at most `limit` open; those beyond `keep` are
    closed after `_IDLE_EXTRA_SECONDS` unused.

    No ping on checkout: after PostgreSQL restarts, the first statement on a pooled connection fails
    (the caller gets UNAVAILABLE and may retry), and that failure drops every idle connection, so the
    requests after it connect afresh. A connection is reused only if it came back idle (committed or
    rolled back); one left mid-query by a cancelled request is closed.
    """

    def __init__(self, conninfo: str, *, keep: int, limit: int) -> None:
        self._conninfo = conninfo
        self._keep = keep
        self._slots = asyncio.Semaphore(limit)
        # (connection, opened at, idle since), most recently used last.
        self._idle: list[tuple[psycopg.AsyncConnection[Any], float, float]] = []
        self._closed = False

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with asyncio.timeout(_WAIT_SECONDS):
                await self._slots.acquire()
        except TimeoutError:
            raise Unavailable(
                "every database connection stayed busy; retry shortly", reason="DATABASE_UNAVAILABLE"
            ) from None
        conn: psycopg.AsyncConnection[Any] | None = None
        opened_at = 0.0
        try:
            conn, opened_at = await self._checkout()
            yield conn
        finally:
            try:
                if conn is not None:
                    await self._checkin(conn, opened_at)
            finally:
                self._slots.release()

    async def _checkout(self) -> tuple[psycopg.AsyncConnection[Any], float]:
        now = time.monotonic()
        while self._idle:
            conn, opened_at, _ = self._idle.pop()
            if not conn.closed and now - opened_at < _RECYCLE_SECONDS:
                return conn, opened_at
            await conn.close()
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, row_factory=_named_rows, connect_timeout=_CONNECT_TIMEOUT_SECONDS
        )
        return conn, now

    async def _checkin(self, conn: psycopg.AsyncConnection[Any], opened_at: float) -> None:
        if conn.broken:
            # The server went away (restart, failover): the idle ones are as dead as this one.
            idle, self._idle = self._idle, []
            for other, _, _ in idle:
                await other.close()
        now = time.monotonic()
        if not self._closed and not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE:
            self._idle.append((conn, opened_at, now))
        else:
            await conn.close()
        while len(self._idle) > self._keep and now - self._idle[0][2] > _IDLE_EXTRA_SECONDS:
            await self._idle.pop(0)[0].close()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn, _, _ in idle:
            await conn.close()


@functools.lru_cache(maxsize=1024)
def _row_type(names: tuple[str, ...]) -> type[tuple[Any, ...]]:
    base = collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]

    class Row(base):
        __slots__ = ()

        @property
        def _mapping(self) -> dict[str, Any]:
            return dict(zip(names, self, strict=True))

    return Row


def _named_rows(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    """psycopg row factory: named tuples, one class per column list."""
    description = cursor.description
    if description is None:
        return tuple
    return _row_type(tuple(column.name for column in description))._make  # type: ignore[attr-defined]


def _libpq_url(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=False)


@contextlib.contextmanager
def _unavailable_when_unreachable() -> Iterator[None]:
    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError, ConnectionError) as exc:
        raise Unavailable("the database is unavailable; retry shortly", reason="DATABASE_UNAVAILABLE") from exc
