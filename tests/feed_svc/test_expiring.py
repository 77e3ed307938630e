"""feed_svc.expiring.ExpiringMap: what get_many finds, expiry, the size bound and a zero TTL."""

from __future__ import annotations

import time

from feed_svc.expiring import ExpiringMap


def test_get_many_splits_found_from_missing_in_the_order_given() -> None:
    entries: ExpiringMap[int, str] = ExpiringMap(10, 60.0)
    entries.put(2, "two")
    entries.put(4, "four")
    assert entries.get_many([5, 4, 3, 2, 1]) == ({4: "four", 2: "two"}, [5, 3, 1])
    entries.put(2, "again")
    entries.pop(4)
    entries.pop(7)  # absent: nothing happens
    assert entries.get_many([2, 4]) == ({2: "again"}, [4])


def test_an_entry_is_gone_once_its_ttl_has_passed() -> None:
    entries: ExpiringMap[int, str] = ExpiringMap(10, 0.05)
    entries.put(1, "one")
    time.sleep(0.1)
    assert entries.get_many([1]) == ({}, [1])


def test_when_full_the_entry_stored_first_goes_first() -> None:
    entries: ExpiringMap[int, int] = ExpiringMap(3, 60.0)
    for key in (1, 2, 3):
        entries.put(key, key)
    entries.put(1, 10)  # stored again: now the newest
    entries.put(4, 4)  # full: 2 (the oldest stored) goes
    assert entries.get_many([1, 2, 3, 4]) == ({1: 10, 3: 3, 4: 4}, [2])


def test_a_zero_ttl_keeps_nothing() -> None:
    entries: ExpiringMap[int, int] = ExpiringMap(3, 0.0)
    entries.put(1, 1)
    assert entries.get_many([1]) == ({}, [1])
