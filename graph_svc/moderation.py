"""The operator credential every ModerationService call must carry: an `x-operator-token` metadata
entry equal to the GLIMPSE_OPERATOR_TOKEN setting. The gateway never sends one (it builds its calls'
metadata itself), so clients cannot reach moderation through it; in Kubernetes the network policies
also keep everything but the gateway and the services off graph_svc's port.

Raises mesh.errors.DomainError subclasses.
"""

from __future__ import annotations

import hmac

from mesh.errors import FailedPrecondition, Unauthenticated

OPERATOR_TOKEN_KEY = "x-operator-token"


class OperatorCredential:
    def __init__(self, token: str) -> None:
        # Empty: moderation is off (no token to guess, nothing to leak).
        self._token = token.encode()

    def check(self, presented: str | None) -> None:
        """Returns if `presented` is the operator token (compared in constant time).

        FAILED_PRECONDITION (MODERATION_DISABLED) while no token is configured; UNAUTHENTICATED
        (OPERATOR_TOKEN_INVALID) for a missing or different one.
        """
        if not self._token:
            raise FailedPrecondition(
                "moderation is off: set GLIMPSE_OPERATOR_TOKEN on graph_svc to enable it",
                reason="MODERATION_DISABLED",
            )
        if presented is None or not hmac.compare_digest(presented.encode(), self._token):
            raise Unauthenticated(
                f"this call needs the operator token in `{OPERATOR_TOKEN_KEY}` metadata",
                reason="OPERATOR_TOKEN_INVALID",
            )
