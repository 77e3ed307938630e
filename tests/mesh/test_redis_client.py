"""mesh.redis_client: commands packed by hiredis are the bytes redis-py's own packer makes, and the
client built on them talks to the real Redis."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Connection
from redis.exceptions import DataError

from mesh.config import MeshSettings
from mesh.redis_client import HiredisPackedConnection, connect_redis

COMMANDS = [
    ("GET", "feed:{42}"),
    ("CONFIG GET", "maxmemory"),
    (b"CLIENT LIST",),
    ("HMGET", b"counts:{20787}", 506373144320147475, 1, "liké"),
    ("ZADD", "outbox:{7}", 1.5, "a", 0.1, "b", float("inf"), "live", -0.0, "c", 2**70, "d"),
    ("SET", "k", memoryview(b"bytes as a view"), "EX", 60),
    ("SET", "k", bytearray(b"a bytearray: redis-py's packer"), "PX", 1),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: str(args[0]))
def test_hiredis_packs_every_command_as_redis_py_does(args: tuple) -> None:
    ours, theirs = HiredisPackedConnection(), Connection()
    assert b"".join(ours.pack_command(*args)) == b"".join(bytes(c) for c in theirs.pack_command(*args))


def test_a_bool_is_refused_as_redis_py_refuses_it() -> None:
    with pytest.raises(DataError, match="bool"):
        HiredisPackedConnection().pack_command("SET", "k", True)


async def test_the_client_round_trips_commands_and_pipelines() -> None:
    url = MeshSettings().redis_url
    redis = connect_redis(url)
    key = f"test:packing:{{{uuid.uuid4().hex}}}"
    try:
        if url.startswith("redis://"):  # a cluster client (make test-cluster) keeps redis-py's packer
            assert redis.connection_pool.connection_class is HiredisPackedConnection
        await redis.hset(key, mapping={"1": "one", "liké": "ü"})
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hmget(key, [1, "liké", 3])
            pipe.expire(key, 60)
            values, expired = await pipe.execute()
        assert values == [b"one", "ü".encode(), None] and expired
    finally:
        await redis.delete(key)
        await redis.aclose()
