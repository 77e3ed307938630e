"""Signed, time-limited rendition URLs: how photo bytes follow the visibility rule.

Nothing in the media bucket is readable without a signature (storage.ObjectStore.ensure_bucket), and
every rendition URL media_svc hands out is a presigned GET on a grid of slots (`slot`, 30 minutes
by default): a URL signed during slot k is signed "at" the start of slot k and expires at the end of
slot k+1. Hence:

- **The bound.** A URL lives at most two slots (one hour) and at least one slot (30 minutes) when
  handed out, and its response carries `Expires` = its expiry, so neither a CDN nor a browser cache
  serves it longer. Whoever stops being allowed to see a photo (unfollowed, blocked, the account
  turned private) is handed no new URL from then on (feed_svc checks graph_svc's visibility rule on
  every read; its answers are dropped by the graph event and live at most visibility_cache_seconds,
  10 s), so every URL they hold stops working within one hour of the change (plus those 10 s if the
  event was missed).
- **Cache-friendly.** Every viewer asking during one slot gets the same URL for a rendition, so a
  CDN or a browser fetches it once per slot, not once per viewer.
- **Cheap.** Signing is local but not free: minio-py's presign takes ~0.05 ms per URL on one core,
  ~3 ms for a feed page of 20 posts x 3 sizes (up to 4x that on a busy core); kept per (rendition,
  slot), ~0.7 KB each, the same page costs ~0.11 ms. (feed_svc caches media for minutes on top.)
  A signed URL is ~460 characters against ~95 unsigned: ~22 KB more JSON per feed page.

Why not public URLs for public accounts and signed ones for private accounts only (the objects of an
account moved between a public and a private prefix when its privacy changes)? A CDN keeps a public
immutable URL for its max-age whatever the store does, so public URLs would need a short shared-cache
lifetime as well; the move is a job per privacy change (3 copies and deletes per photo, racing the
rendition worker's writes) whose lag or failure would leave a private account's photos public with
no bound at all; and every cache holding URLs would have to drop them on `graph.privacy_changed`. Here
the bound is arithmetic on the URL itself and holds whatever runs or fails; the price is one fetch
per rendition per slot and per cache (CDN edge, browser) instead of one ever.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import LRUCache

from media_svc.storage import ObjectStore

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: dt.datetime


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RenditionUrls:
    def __init__(
        self,
        store: ObjectStore,
        *,
        slot: dt.timedelta,
        max_cached: int,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        """`slot`: whole seconds, at least one; two slots are at most 7 days (S3's longest presign).
        `clock`: the current time, UTC (a parameter so tests can stand at a slot's edge)."""
        seconds = slot.total_seconds()
        if seconds < 1 or seconds != int(seconds) or 2 * seconds > 7 * 24 * 3600:
            raise ValueError(f"a rendition URL slot is whole seconds, 1 s to 3.5 days; got {slot}")
        self._store = store
        self._slot = int(seconds)
        self._clock = clock
        # rendition key -> URL signed in slot `_cached_slot`: the URLs of one slot at a time.
        self._cache: LRUCache[str, str] = LRUCache(max(max_cached, 1))
        self._cached_slot = -1

    def public(self, key: str) -> str:
        """The unsigned URL of an avatar's rendition (public: object_keys.AVATAR_PREFIX)."""
        return self._store.public_url(key)

    @property
    def bound(self) -> dt.timedelta:
        """The longest a URL works after it was handed out: two slots."""
        return dt.timedelta(seconds=2 * self._slot)

    def signed(self, key: str) -> SignedUrl:
        """The URL of the rendition stored under `key` for the current slot: the same for every call
        in the slot, working from when it is returned until between one and two slots later."""
        slot = int((self._clock() - _EPOCH).total_seconds()) // self._slot
        expires_at = _EPOCH + dt.timedelta(seconds=(slot + 2) * self._slot)
        if slot != self._cached_slot:
            self._cache.clear()
            self._cached_slot = slot
        url = self._cache.get(key)
        if url is None:
            signed_at = _EPOCH + dt.timedelta(seconds=slot * self._slot)
            url = self._cache[key] = self._store.presign_download(key, signed_at, expires_at)
        return SignedUrl(url, expires_at)
