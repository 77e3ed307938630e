"""Which types of notification each user receives: every type until they switch it off.

A type is named as in the contract, without its prefix ("like" for NOTIFICATION_TYPE_LIKE). Switching
a type off stops new notifications of it (the writer reads the switches under the inbox's lock, so
nothing of that type is written once the change commits); notifications already received stay.
"""

from __future__ import annotations

from collections.abc import Mapping

from glimpse.notification.v1 import notification_pb2
from mesh.db import Database
from mesh.errors import invalid_field
from notification_svc import repository as repo
from notification_svc.models import KINDS

# "like" -> NOTIFICATION_TYPE_LIKE's number, for every type.
TYPE_NAMES: Mapping[str, int] = {
    notification_pb2.NotificationType.Name(kind).removeprefix("NOTIFICATION_TYPE_").lower(): kind for kind in KINDS
}


class Preferences:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: int) -> dict[str, bool]:
        """Each type's name -> whether the user receives it."""
        async with self._db.read_only() as session:
            inbox = await repo.inbox(session, user_id)
        return {name: inbox.receives(kind) for name, kind in TYPE_NAMES.items()}

    async def update(self, user_id: int, switches: Mapping[str, bool]) -> dict[str, bool]:
        """Switches the named types on or off; every type's state after. INVALID_ARGUMENT
        (update_mask) when `switches` is empty or names a type that does not exist."""
        if not switches:
            raise invalid_field("update_mask", f"name at least one type to change: {', '.join(TYPE_NAMES)}")
        unknown = sorted(set(switches) - set(TYPE_NAMES))
        if unknown:
            raise invalid_field(
                "update_mask", f"{unknown[0]!r} is not a notification type; the types are {', '.join(TYPE_NAMES)}"
            )
        async with self._db.unit_of_work() as session:
            inbox = await repo.lock_inbox(session, user_id)
            disabled = inbox.disabled_kinds
            for name, on in switches.items():
                bit = 1 << TYPE_NAMES[name]
                disabled = disabled & ~bit if on else disabled | bit
            if disabled != inbox.disabled_kinds:
                await repo.set_disabled_kinds(session, user_id, disabled)
        return {name: not disabled & (1 << kind) for name, kind in TYPE_NAMES.items()}
