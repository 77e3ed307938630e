"""The caller's profile: display name, bio and website (UpdateUser's paths, with is_private, whose rules
are graph_svc.privacy's), and the profile picture.

**Text fields.** Each is checked and normalised here and the whole request is refused, naming the
field by its path, before anything is written (all or none):
- `display_name`: at most DISPLAY_NAME_MAX (64) characters after trimming surrounding spaces, on
  one line; no control or bidirectional-override characters (they disguise a name).
- `bio`: at most BIO_MAX (150) characters (Instagram's limit) after trimming; line breaks allowed
  (CR LF stored as LF), no other control or bidirectional-override characters.
- `website`: "" (none) or an http(s) URL of at most WEBSITE_MAX (200) characters; "example.com"
  means "https://example.com". Normalised: lower-case scheme and host (IDNA for non-ASCII hosts),
  no default port, no user name or password (a phishing trick: "https://bank.com@evil.example").

**Profile picture.** SetAvatar asks media_svc to attach the caller's avatar upload (media_svc
checks owner, purpose, upload and size, and renders it); the account keeps showing its previous
picture (or none) until media_svc reports the new one ready (`media.avatar_ready`, handled here),
and keeps it if the upload turns out unusable (`media.failed`). The picture asked for is recorded
as pending *before* media_svc is asked, so its ready event always finds it. A picture no longer
shown or pending (replaced, removed, superseded while processing, unusable) is handed back to
media_svc with `graph.avatar_discarded`, which deletes its objects. Summaries carry the public URLs
stored with the account, so showing a user costs no media_svc call (media_svc.object_keys says why
avatars are public). Staleness: a reader's cache of users (feed_svc's hydration cache, 60 s) may
name a replaced or removed picture for that long, whose objects are already deleted (its URL then
fails and clients show no picture); a new picture's URL is new, so no cache ever shows a stale one.

Raises mesh.errors.DomainError subclasses; media_svc's refusals reach the caller unchanged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import grpc

from glimpse.events.v1 import events_pb2
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from graph_svc import profile_repository as profile_repo
from graph_svc import repository as repo
from graph_svc.privacy import PrivacyService
from graph_svc.repository import UserRecord
from mesh.bus import ConsumerSpec
from mesh.db import Database, Session
from mesh.errors import PermissionDenied, Unauthenticated, invalid_field
from mesh.events import AVATAR_READY, MEDIA_FAILED, PoisonMessage
from mesh.identity import as_caller
from mesh.outbox import Outbox

DISPLAY_NAME_MAX = 64
BIO_MAX = 150
WEBSITE_MAX = 200
# The paths of User that UpdateUser changes: the profile's text fields and is_private.
PROFILE_FIELDS = ("display_name", "bio", "website")
UPDATABLE_FIELDS = (*PROFILE_FIELDS, "is_private")
# The sides of media_svc's avatar squares: the summary picture and the profile page's.
AVATAR_SIDE, AVATAR_LARGE_SIDE = 150, 320

# Bidirectional embeddings, overrides and isolates (Unicode category Cf): they can make a name read
# as another ("moc.elgoog" shown as "google.com").
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
# media_svc's answers that mean the picture was not attached (nothing of it to show or discard).
_REFUSALS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)


@dataclass(frozen=True)
class ProfileValues:
    """What UpdateUser's request carries for each path (only those in the mask are read)."""

    display_name: str = ""
    bio: str = ""
    website: str = ""
    is_private: bool = False


def checked_display_name(value: str) -> str:
    """`value` trimmed; INVALID_ARGUMENT (display_name) if it breaks the rule (module docstring)."""
    name = value.strip()
    problem = _hidden_characters(name, allow_newlines=False)
    if problem:
        raise invalid_field("display_name", problem)
    if len(name) > DISPLAY_NAME_MAX:
        raise invalid_field("display_name", f"is {len(name)} characters; at most {DISPLAY_NAME_MAX}")
    return name


def checked_bio(value: str) -> str:
    """`value` trimmed, line breaks as LF; INVALID_ARGUMENT (bio) if it breaks the rule."""
    bio = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    problem = _hidden_characters(bio, allow_newlines=True)
    if problem:
        raise invalid_field("bio", problem)
    if len(bio) > BIO_MAX:
        raise invalid_field("bio", f"is {len(bio)} characters; at most {BIO_MAX}")
    return bio


# A scheme before a colon that is not a port ("mailto:", "javascript:"; "example.com:8080" is a host).
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(?!\d)")


def normalised_website(value: str) -> str:
    """`value` as the URL stored ("" for none); INVALID_ARGUMENT (website) if it is not an http(s) URL
    within the rule (module docstring)."""
    text = value.strip()
    if not text:
        return ""
    if any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in text):
        raise invalid_field("website", "must be a URL without spaces or invisible characters")
    if "://" not in text:
        other_scheme = _SCHEME.match(text)
        if other_scheme and other_scheme.group(1).lower() not in ("http", "https"):
            raise invalid_field("website", f"must be an http or https URL, not {other_scheme.group(1).lower()}:")
        if not text.lower().startswith(("http:", "https:")):
            text = f"https://{text}"
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise invalid_field("website", "is not a URL; write it like https://example.com/page") from exc
    try:
        port = parts.port
    except ValueError as exc:
        raise invalid_field("website", "has a port that is not a number from 1 to 65535") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise invalid_field("website", f"must be an http or https URL, not {scheme}:")
    if parts.username is not None or parts.password is not None:
        raise invalid_field("website", "must not contain a user name or password")
    host = parts.hostname or ""
    if not host or host.startswith(".") or ".." in host:
        raise invalid_field("website", "must name a host, e.g. https://example.com")
    if "." not in host.rstrip(".") and ":" not in host:
        # "ada" or "localhost": no one else can open it (an IPv6 literal has colons, IPv4 dots).
        raise invalid_field("website", f"must name a public host such as {host}.com, not {host}")
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise invalid_field("website", "has a host name that cannot be used") from exc
    if ":" in host:  # an IPv6 literal: urlsplit drops its brackets
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    url = urlunsplit((scheme, host, parts.path, parts.query, parts.fragment))
    if len(url) > WEBSITE_MAX:
        raise invalid_field("website", f"is {len(url)} characters; at most {WEBSITE_MAX}")
    return url


def _hidden_characters(text: str, *, allow_newlines: bool) -> str | None:
    for offset, char in enumerate(text):
        if char == "\n" and allow_newlines:
            continue
        if unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS:
            what = "line breaks" if char in "\r\n" else f"U+{ord(char):04X}"
            return f"must not contain {what} (at offset {offset})"
    return None


def checked_changes(paths: Sequence[str], values: ProfileValues) -> dict[str, str]:
    """The text columns to write for the profile paths among `paths`, each checked and normalised;
    INVALID_ARGUMENT naming the first bad field."""
    checks = {"display_name": checked_display_name, "bio": checked_bio, "website": normalised_website}
    return {path: checks[path](getattr(values, path)) for path in PROFILE_FIELDS if path in paths}


class ProfileService:
    def __init__(
        self,
        *,
        db: Database,
        outbox: Outbox,
        privacy: PrivacyService,
        media: media_pb2_grpc.MediaServiceStub,
        media_timeout: float,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._privacy = privacy
        self._media = media
        self._media_timeout = media_timeout

    async def update_user(
        self, caller_id: int, user_id: int, paths: Sequence[str], values: ProfileValues
    ) -> UserRecord:
        """Changes the fields of the caller's account named in `paths` (UPDATABLE_FIELDS), all or
        none, in one transaction; returns the account. is_private follows PrivacyService.set_private.

        INVALID_ARGUMENT (update_mask) for no paths or one not in UPDATABLE_FIELDS, (display_name,
        bio, website) for a value that breaks its rule; PERMISSION_DENIED if `user_id` is neither 0
        nor the caller; UNAUTHENTICATED (ACCOUNT_GONE) if the caller's account is gone.
        """
        if user_id not in (0, caller_id):
            raise PermissionDenied("you can only change your own account", fields={"user.id": "is not you"})
        if not paths:
            raise invalid_field("update_mask", f"name the fields to change: {', '.join(UPDATABLE_FIELDS)}")
        unknown = sorted(set(paths) - set(UPDATABLE_FIELDS))
        if unknown:
            raise invalid_field(
                "update_mask", f"{unknown[0]!r} cannot be changed here; only {', '.join(UPDATABLE_FIELDS)}"
            )
        changes = checked_changes(paths, values)  # every check before any write
        async with self._db.unit_of_work() as session:
            if "is_private" in paths:
                await self._privacy.set_private(session, caller_id, values.is_private)  # locks the row
            elif await profile_repo.lock_avatar(session, caller_id) is None:
                raise Unauthenticated("your account no longer exists", reason="ACCOUNT_GONE")
            if changes:
                await profile_repo.set_profile(session, caller_id, changes)
            user = await repo.get_user(session, caller_id)
        assert user is not None  # locked above
        return user

    async def set_avatar(self, caller_id: int, media_id: int) -> tuple[UserRecord, bool]:
        """Asks for the caller's avatar upload `media_id` to become their picture; returns the account
        as it is now and whether the picture is already shown (True only when its renditions were
        ready: a repeat). Idempotent for the same media.

        INVALID_ARGUMENT (media_id) for an id that is not positive; UNAUTHENTICATED (ACCOUNT_GONE);
        media_svc's refusals unchanged (NOT_FOUND MEDIA_NOT_FOUND, PERMISSION_DENIED NOT_MEDIA_OWNER,
        FAILED_PRECONDITION WRONG_PURPOSE / NOT_UPLOADED / SIZE_MISMATCH / MEDIA_TOO_LARGE), after
        which nothing is pending.
        """
        if media_id <= 0:
            raise invalid_field("media_id", "must be a media id from an upload grant with purpose avatar")
        async with self._db.unit_of_work() as session:
            state = await self._locked_avatar(session, caller_id)
            if state.shown_media_id == media_id:
                # Asked for again while another was pending: this one stays, the other is dropped.
                if state.pending_media_id is not None:
                    await profile_repo.set_pending_avatar(session, caller_id, None)
                    await self._discard(session, caller_id, state.pending_media_id)
                user = await repo.get_user(session, caller_id)
                assert user is not None
                return user, True
            if state.pending_media_id != media_id:
                await profile_repo.set_pending_avatar(session, caller_id, media_id)
                await self._discard(session, caller_id, state.pending_media_id)
        try:
            media = await self._media.AttachAvatar(
                media_pb2.AttachAvatarRequest(media_id=media_id),
                metadata=as_caller(caller_id),
                timeout=self._media_timeout,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _REFUSALS:
                await self._forget_pending(caller_id, media_id, discard=False)
            raise
        if media.status == media_pb2.MEDIA_STATUS_READY:
            # Rendered before (a repeat whose ready event found it already handled): show it now.
            urls = {r.size: r.url for r in media.renditions}
            await self._show(caller_id, media_id, urls)
        elif media.status == media_pb2.MEDIA_STATUS_FAILED:
            await self._forget_pending(caller_id, media_id, discard=True)
        async with self._db.read_only() as session:
            user = await repo.get_user(session, caller_id)
        if user is None:
            raise Unauthenticated("your account no longer exists", reason="ACCOUNT_GONE")
        return user, user.avatar_media_id == media_id

    async def delete_avatar(self, caller_id: int) -> tuple[bool, UserRecord]:
        """Removes the caller's picture and forgets one pending; (whether there was either, the
        account). Both are discarded (`graph.avatar_discarded`). Idempotent. UNAUTHENTICATED
        (ACCOUNT_GONE) if the caller's account is gone."""
        async with self._db.unit_of_work() as session:
            state = await self._locked_avatar(session, caller_id)
            deleted = state.shown_media_id is not None or state.pending_media_id is not None
            if deleted:
                await profile_repo.clear_avatar(session, caller_id)
                await self._discard(session, caller_id, state.shown_media_id)
                await self._discard(session, caller_id, state.pending_media_id)
            user = await repo.get_user(session, caller_id)
        assert user is not None  # locked above
        return deleted, user

    async def on_avatar_ready(self, event: events_pb2.AvatarReady) -> None:
        """`media.avatar_ready`: the picture becomes the owner's if it is the one pending (the one
        shown before is discarded); otherwise nothing (it was discarded when it stopped being asked
        for). Idempotent."""
        if event.media_id <= 0 or event.owner_id <= 0:
            raise PoisonMessage("AvatarReady without media_id or owner_id")
        await self._show(event.owner_id, event.media_id, {image.size: image.url for image in event.images})

    async def on_media_failed(self, event: events_pb2.MediaFailed) -> None:
        """`media.failed` of the pending avatar: nothing is pending any more (the account keeps its
        picture) and the upload is discarded. Photos of posts (post_id set) are not ours. Idempotent."""
        if event.post_id or event.media_id <= 0 or event.owner_id <= 0:
            return
        await self._forget_pending(event.owner_id, event.media_id, discard=True)

    async def on_media_event(self, event: events_pb2.AvatarReady | events_pb2.MediaFailed) -> None:
        """The consumer's handler (avatar_consumer): each event to its method."""
        if isinstance(event, events_pb2.AvatarReady):
            await self.on_avatar_ready(event)
        else:
            await self.on_media_failed(event)

    async def _show(self, user_id: int, media_id: int, urls: Mapping[int, str]) -> None:
        if AVATAR_SIDE not in urls or AVATAR_LARGE_SIDE not in urls:
            raise PoisonMessage(f"avatar {media_id} lacks its {AVATAR_SIDE} or {AVATAR_LARGE_SIDE} px square")
        async with self._db.unit_of_work() as session:
            state = await profile_repo.lock_avatar(session, user_id)
            if state is None or state.pending_media_id != media_id:
                return  # the account is gone, or another picture (or none) was asked for since
            await profile_repo.show_avatar(session, user_id, media_id, urls[AVATAR_SIDE], urls[AVATAR_LARGE_SIDE])
            await self._discard(session, user_id, state.shown_media_id)

    async def _forget_pending(self, user_id: int, media_id: int, *, discard: bool) -> None:
        async with self._db.unit_of_work() as session:
            state = await profile_repo.lock_avatar(session, user_id)
            if state is not None and state.pending_media_id == media_id:
                await profile_repo.set_pending_avatar(session, user_id, None)
                if discard:
                    await self._discard(session, user_id, media_id)

    async def _locked_avatar(self, session: Session, user_id: int) -> profile_repo.AvatarState:
        state = await profile_repo.lock_avatar(session, user_id)
        if state is None:
            raise Unauthenticated("your account no longer exists", reason="ACCOUNT_GONE")
        return state

    async def _discard(self, session: Session, user_id: int, media_id: int | None) -> None:
        if media_id is not None:
            await self._outbox.add(session, events_pb2.AvatarDiscarded(user_id=user_id, media_id=media_id))


AVATARS_DURABLE = "graph_avatars"


def avatar_consumer(profile: ProfileService) -> ConsumerSpec:
    """media_svc's `media.avatar_ready` and `media.failed` -> ProfileService (at least once: every
    handler is idempotent)."""
    return ConsumerSpec(durable=AVATARS_DURABLE, events=[AVATAR_READY, MEDIA_FAILED], handler=profile.on_media_event)
