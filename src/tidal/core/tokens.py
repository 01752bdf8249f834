"""API tokens: their format, their roles and scopes, and how a secret is checked against its stored hash.

A token is ``tidal_<id>_<secret>``: ``id`` is 12 hex digits that name the token (shown by ``tidal tokens
ls``, written into events as who acted), ``secret`` is 32 random bytes (``secrets.token_urlsafe``). Only the
SHA-256 of the secret is stored. A slow password hash (scrypt, bcrypt) exists to make guessing a *human*
password expensive; a 256-bit random secret cannot be guessed, so one SHA-256 is as safe and costs a
microsecond instead of tens of milliseconds on every request. The stored hash is compared in constant time
(:func:`hmac.compare_digest`), and the lookup is by ``id`` (the primary key), never by the secret.

Roles are ordered ``viewer`` < ``operator`` < ``admin`` (each may do what the one below may): viewer reads,
operator also promotes, rolls back and controls the loop, admin also manages tokens. ``none`` is a token
with no access to the management API, for a client that only calls the scoped endpoints of ``tidal serve``
(``deploy.auth``: the scopes ``predict`` and ``feedback``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tidal.core.errors import Forbidden, Unauthenticated

#: The roles of the management API, lowest first: a role may do everything a lower one may.
ROLES = ("none", "viewer", "operator", "admin")
#: The scopes a token may carry for the serving endpoints that ``deploy.auth`` protects.
SCOPES = ("predict", "feedback")
PREFIX = "tidal_"
_TOKEN = re.compile(r"tidal_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})")


@dataclass(frozen=True)
class ApiToken:
    """A stored token: never its secret, only the secret's SHA-256 (``digest``)."""

    id: str
    name: str
    role: str
    digest: str
    created_at: datetime
    created_by: str
    scopes: tuple[str, ...] = ()
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        """How events name this token: ``token:<name>#<id>`` (never the secret)."""
        return f"token:{self.name}#{self.id}"

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def to_dict(self) -> dict[str, Any]:
        """What ``tidal tokens ls --json`` and ``GET /api/v1/tokens`` show: everything but the digest."""
        return {"id": self.id, "name": self.name, "role": self.role, "scopes": list(self.scopes),
                "created_at": self.created_at.isoformat(), "created_by": self.created_by,
                "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
                "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
                "revoked_by": self.revoked_by}


def new_secret() -> tuple[str, str, str]:
    """A fresh token: (id, the whole token text to hand out once, the digest to store)."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return token_id, f"{PREFIX}{token_id}_{secret}", digest_of(secret)


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(text: str) -> tuple[str, str]:
    """(id, secret) of a token's text; Unauthenticated when it is not one (the message never repeats it)."""
    m = _TOKEN.fullmatch(text.strip())
    if m is None:
        raise Unauthenticated("the token is malformed", hint="send `Authorization: Bearer tidal_<id>_<secret>` "
                                                            "as printed by `tidal tokens create`")
    return m.group(1), m.group(2)


def verify(stored: ApiToken | None, secret: str, now: datetime) -> ApiToken:
    """``stored`` when ``secret`` is its secret and it is neither revoked nor expired; Unauthenticated
    otherwise, with the same compare whether or not a token was found (no timing hint of which ids exist)."""
    expected = stored.digest if stored is not None else "0" * 64
    ok = hmac.compare_digest(expected, digest_of(secret))
    if stored is None or not ok:
        raise Unauthenticated("unknown token", hint="create one with `tidal tokens create`")
    if stored.revoked_at is not None:
        raise Unauthenticated(f"token {stored.id} was revoked", hint="ask an admin for a new token")
    if stored.expires_at is not None and now >= stored.expires_at:
        raise Unauthenticated(f"token {stored.id} expired at {stored.expires_at.isoformat()}",
                              hint="ask an admin for a new token")
    return stored


def require_role(token: ApiToken, role: str) -> None:
    """Forbidden unless ``token``'s role is ``role`` or above."""
    if ROLES.index(token.role) < ROLES.index(role):
        raise Forbidden(f"token {token.id} ({token.name}) has the role {token.role}; this needs {role}",
                        hint="use a token with that role (`tidal tokens create --role ...`)")


def require_scope(token: ApiToken, scope: str) -> None:
    """Forbidden unless ``token`` carries ``scope`` (an admin token carries every scope)."""
    if scope not in token.scopes and token.role != "admin":
        raise Forbidden(f"token {token.id} ({token.name}) lacks the scope {scope}",
                        hint=f"create a token with `tidal tokens create --scope {scope}`")


__all__ = ["PREFIX", "ROLES", "SCOPES", "ApiToken", "digest_of", "new_secret", "parse", "require_role",
           "require_scope", "verify"]
