"""The management API's tokens, as the workspace offers them: ``ws.tokens`` (``tidal tokens``).

Creating and revoking a token is an event (``token.created``, ``token.revoked``) that names who did it and
the token by name and id, never its secret. See :mod:`tidal.core.tokens` for the format and the hash.
"""

from __future__ import annotations

import builtins
import getpass
import re
import socket
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tidal.core.entities import Event
from tidal.core.errors import NotFound, TidalError
from tidal.core.tokens import ROLES, SCOPES, ApiToken, new_secret, parse, verify

if TYPE_CHECKING:
    from tidal.workspace import Workspace

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


def local_actor() -> str:
    """Who acts from a shell on this machine (the CLI, the SDK): ``local:<user>@<host>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        user = "unknown"
    return f"local:{user}@{socket.gethostname()}"


class Tokens:
    """Create, list, revoke and check the API tokens of a workspace (``ws.tokens``)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def create(self, name: str, *, role: str = "viewer", scopes: tuple[str, ...] | builtins.list[str] = (),
               expires_in: timedelta | None = None, actor: str | None = None) -> tuple[ApiToken, str]:
        """A new token: (the stored token, the token's text). The text is shown once and never stored."""
        if not _NAME.fullmatch(name):
            raise TidalError(f"token name {name!r} is not allowed",
                             hint="use 1-64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit")
        if role not in ROLES:
            raise TidalError(f"unknown role {role!r}", hint=f"use one of {', '.join(ROLES)}")
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise TidalError(f"unknown scope {unknown[0]!r}", hint=f"use {' or '.join(SCOPES)}")
        if expires_in is not None and expires_in <= timedelta(0):
            raise TidalError("a token's lifetime must be positive", hint="e.g. --expires 30d")
        now = self._ws.clock.now()
        token_id, text, digest = new_secret()
        who = actor or local_actor()
        token = ApiToken(id=token_id, name=name, role=role, digest=digest, created_at=now, created_by=who,
                         scopes=tuple(sorted(set(scopes))), expires_at=None if expires_in is None else now + expires_in)
        store = self._ws.store
        with store.atomic():
            store.create_token(token)
            store.append_event(Event(
                kind="token.created", subject=f"token:{token.id}", time=now,
                message=f"token {name} ({token.id}, role {role}"
                        + (f", scopes {', '.join(token.scopes)}" if token.scopes else "") + f") created by {who}",
                data={"actor": who, "token": token.id, "name": name, "role": role, "scopes": list(token.scopes),
                      "expires_at": None if token.expires_at is None else token.expires_at.isoformat()}))
        return token, text

    def list(self) -> builtins.list[ApiToken]:
        """Every token, oldest first (revoked ones too, marked so); never a secret."""
        return self._ws.store.list_tokens()

    def by_id(self, token_id: str) -> ApiToken | None:
        """The token ``token_id`` (revoked or not), or None; read from the store each time."""
        return self._ws.store.get_token(token_id)

    def get(self, ref: str) -> ApiToken:
        """A token by id, or by name when one token that is not revoked has it."""
        token = self._ws.store.get_token(ref)
        if token is not None:
            return token
        named = [t for t in self.list() if t.name == ref and t.revoked_at is None]
        if len(named) == 1:
            return named[0]
        if not named:
            raise NotFound(f"no token {ref!r}", hint="see the tokens with `tidal tokens ls`")
        raise TidalError(f"{len(named)} tokens are named {ref!r}", hint="name it by its id (`tidal tokens ls`)")

    def revoke(self, ref: str, *, actor: str | None = None) -> ApiToken:
        """Revoke a token (by id or name); it stops working at once, in every process."""
        token = self.get(ref)
        if token.revoked_at is not None:
            return token
        who = actor or local_actor()
        now = self._ws.clock.now()
        store = self._ws.store
        with store.atomic():
            revoked = store.revoke_token(token.id, now, who)
            store.append_event(Event(
                kind="token.revoked", subject=f"token:{token.id}", time=now,
                message=f"token {token.name} ({token.id}) revoked by {who}",
                data={"actor": who, "token": token.id, "name": token.name}))
        assert revoked is not None  # it was read above, and tokens are never deleted
        return revoked

    def authenticate(self, text: str, *, now: datetime | None = None) -> ApiToken:
        """The token whose text this is, when it is neither revoked nor expired; Unauthenticated otherwise.
        One primary-key read of the store each time, so a revoke elsewhere counts at once."""
        token_id, secret = parse(text)
        return verify(self._ws.store.get_token(token_id), secret, now or self._ws.clock.now())


__all__ = ["Tokens", "local_actor"]
