from __future__ import annotations

import threading
import time

import pytest

from mesh.ids import MAX_SHARD, IdGenerator, lowest_id_at, timestamp_ms


def test_ids_are_unique_increasing_and_carry_their_time():
    gen = IdGenerator(shard=5)
    before = time.time_ns() // 1_000_000
    ids = [gen.next_id() for _ in range(20_000)]  # > 1024 per ms forces the sequence to roll over
    after = time.time_ns() // 1_000_000
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(0 < i < 2**63 for i in ids)
    minted_first, minted_last = timestamp_ms(ids[0]), timestamp_ms(ids[-1])
    assert before <= minted_first <= minted_last <= after
    assert lowest_id_at(minted_first) <= ids[0]


def test_threads_sharing_a_generator_never_collide():
    gen, out = IdGenerator(shard=1), []
    lock = threading.Lock()

    def mint():
        mine = [gen.next_id() for _ in range(5000)]
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=mint) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(out)) == 20_000


def test_shards_differ_in_the_same_millisecond():
    a, b = IdGenerator(shard=1), IdGenerator(shard=2)
    assert a.next_id() != b.next_id()
    with pytest.raises(ValueError):
        IdGenerator(shard=MAX_SHARD + 1)


async def test_processes_lease_distinct_shards(graph_settings):
    from mesh.runtime import open_runtime

    async with open_runtime(graph_settings) as first, open_runtime(graph_settings) as second:
        a, b = first.ids.next_id(), second.ids.next_id()
    shard_bits = (1 << 13) - 1
    assert (a >> 10) & shard_bits != (b >> 10) & shard_bits
