"""PostgreSQL access: one async engine per process and one unit of work per request or message.

Only `Database.unit_of_work` commits. Code inside it adds and flushes; if it raises, everything is
rolled back, so a failed request leaves no half-written state.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from mesh.errors import Unavailable

# Set in `session.info` by code that wrote outbox rows, so the relay is woken right after commit.
OUTBOX_WRITTEN = "outbox_written"


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._outbox_listeners: list[Callable[[], None]] = []

    def on_outbox_commit(self, listener: Callable[[], None]) -> None:
        """Calls `listener` after each commit that wrote outbox rows (the relay's wake-up)."""
        self._outbox_listeners.append(listener)

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed when the block ends and rolled back if it raises.

        Raises Unavailable when the database cannot be reached, so clients see UNAVAILABLE (retry)
        rather than INTERNAL.
        """
        with _unavailable_when_unreachable():
            async with self._sessions() as session, session.begin():
                yield session
        if session.info.get(OUTBOX_WRITTEN):
            for listener in self._outbox_listeners:
                listener()

    @contextlib.asynccontextmanager
    async def read_only(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; nothing is committed."""
        with _unavailable_when_unreachable():
            async with self._sessions() as session:
                yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


@contextlib.contextmanager
def _unavailable_when_unreachable() -> Iterator[None]:
    try:
        yield
    except (sa_exc.OperationalError, sa_exc.InterfaceError, ConnectionError) as exc:
        raise Unavailable("the database is unavailable; retry shortly", reason="DATABASE_UNAVAILABLE") from exc
