"""Who is calling the management API, and may they: bearer tokens, the dashboard's session cookie, CSRF.

A request is authenticated by exactly one of:

- ``Authorization: Bearer tidal_<id>_<secret>`` (scripts, the CLI of another machine): the token is looked
  up by id and its secret checked against the stored SHA-256 (:mod:`tidal.core.tokens`) on every request.
- the session cookie ``tidal_session`` that ``POST /api/v1/session`` sets after checking a token (the
  dashboard): ``<payload>.<signature>``, the payload the token's id, an expiry and a CSRF token, signed with
  HMAC-SHA256 under the server's session key (:func:`session_key`: ``$TIDAL_UI_SECRET``, else a random key
  kept in the workspace's ``.tidal/ui-session.key``, so a restart does not sign anyone out). It is
  HttpOnly (scripts on the page cannot read it), SameSite=Strict (other sites' pages do not send it) and
  Secure when the request came over HTTPS. A cookie whose signature does not verify is refused (401); one
  that verifies still names a token, which is read from the store on every request, so revoking the token
  ends its sessions at once. Every request that changes something (any method but GET, HEAD and OPTIONS)
  made with the cookie must also carry the session's CSRF token in the ``X-CSRF-Token`` header (403
  otherwise): another site cannot read it, so it cannot forge the action.

Nothing here logs or echoes a token, a secret or a cookie: errors name a token by its id at most.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tidal.core.errors import Forbidden, TidalError, Unauthenticated
from tidal.core.tokens import ApiToken, require_role
from tidal.workspace import Workspace

COOKIE = "tidal_session"
CSRF_HEADER = "x-csrf-token"
#: How long a dashboard session lasts (the token's own expiry, when earlier, ends it sooner).
SESSION_S = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The environment variable that gives every server of a deployment the same session key.
SECRET_ENV = "TIDAL_UI_SECRET"
KEY_FILE = "ui-session.key"
KEY_BYTES = 32

logger = logging.getLogger("tidal.ui")


@dataclass(frozen=True)
class Caller:
    """Who made a request: the token (None with ``--no-auth``), how it came (bearer, cookie, none), and the
    name written into events as the actor."""

    token: ApiToken | None
    via: str
    actor: str

    def require(self, role: str) -> None:
        if self.token is not None:
            require_role(self.token, role)


#: The caller of every request when the server runs with ``--no-auth`` (loopback only).
ANONYMOUS = Caller(token=None, via="none", actor="anonymous (tidal ui --no-auth)")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_key(workspace_dir: Path, environ: Mapping[str, str] | None = None) -> bytes:
    """The key that signs the dashboard's session cookies.

    ``$TIDAL_UI_SECRET`` when set (at least 32 characters): every replica of a deployment given the same
    secret accepts the others' cookies, and nothing is written. Otherwise a random key kept in
    ``workspace_dir/ui-session.key`` (made on first use, readable by its owner only), so that restarting
    ``tidal ui`` does not sign everyone out. Where that file cannot be written (a read-only project, as in
    the Kubernetes manifests), a key of this process only, with a warning that names the variable."""
    env = os.environ if environ is None else environ
    secret = env.get(SECRET_ENV)
    if secret is not None:
        if len(secret) < KEY_BYTES:
            raise TidalError(f"{SECRET_ENV} has {len(secret)} characters; a session key needs at least {KEY_BYTES}",
                             hint="make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        # Derived, so that the key is always 32 bytes whatever the secret's length and alphabet.
        return hashlib.sha256(b"tidal-ui-session\0" + secret.encode()).digest()
    path = workspace_dir / KEY_FILE
    try:
        return _read_key(path)
    except (FileNotFoundError, NotADirectoryError):
        pass
    key = secrets.token_bytes(KEY_BYTES)
    try:
        workspace_dir.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two servers starting at once must not each write their own key; the loser reads the winner's.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    except OSError as exc:
        logger.warning("the session key cannot be kept in %s (%s): sessions last until this server stops; "
                       "set %s to keep them across restarts and replicas", path, exc.strerror or exc, SECRET_ENV)
        return key
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def _read_key(path: Path) -> bytes:
    try:
        key = path.read_bytes()
    except PermissionError:
        raise TidalError(f"the session key {path} cannot be read (permission denied)",
                         hint=f"run tidal ui as the user who owns it, or set {SECRET_ENV}") from None
    if len(key) != KEY_BYTES:
        # Not a file tidal wrote whole: refuse rather than sign with a short (or empty) key.
        raise TidalError(f"{path} holds {len(key)} bytes, not a {KEY_BYTES}-byte session key",
                         hint=f"delete it (tidal makes a new one; every dashboard session ends) or set {SECRET_ENV}")
    return key


class Sessions:
    """Signs and checks the dashboard's session cookies (see the module docstring)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(KEY_BYTES)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, token: ApiToken, now: float | None = None) -> tuple[str, str, int]:
        """(cookie value, CSRF token, max age in seconds) of a new session for ``token``."""
        now = time.time() if now is None else now
        until = now + SESSION_S
        if token.expires_at is not None:
            until = min(until, token.expires_at.timestamp())
        csrf = secrets.token_urlsafe(24)
        payload = _b64(json.dumps({"tid": token.id, "exp": int(until), "csrf": csrf}).encode())
        return f"{payload}.{self._sign(payload)}", csrf, max(0, int(until - now))

    def read(self, cookie: str, now: float | None = None) -> tuple[str, str]:
        """(token id, CSRF token) of a cookie this server signed and that has not expired; Unauthenticated
        otherwise."""
        payload, _, signature = cookie.partition(".")
        if not payload or not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            raise Unauthenticated("the session cookie is not valid", hint="sign in again (POST /api/v1/session)")
        try:
            data = json.loads(_unb64(payload))
            token_id, until, csrf = str(data["tid"]), float(data["exp"]), str(data["csrf"])
        except (ValueError, KeyError, TypeError):
            raise Unauthenticated("the session cookie is not valid", hint="sign in again") from None
        if (time.time() if now is None else now) >= until:
            raise Unauthenticated("the session has expired", hint="sign in again (POST /api/v1/session)")
        return token_id, csrf


class Authenticator:
    """Turns a request's headers into a :class:`Caller`, or raises Unauthenticated / Forbidden."""

    def __init__(self, ws: Workspace, *, enabled: bool = True, sessions: Sessions | None = None) -> None:
        self.ws = ws
        self.enabled = enabled
        self.sessions = sessions or (Sessions(session_key(ws.settings.workspace_dir)) if enabled else Sessions())

    def caller(self, method: str, authorization: str | None, cookie: str | None, csrf: str | None) -> Caller:
        if not self.enabled:
            return ANONYMOUS
        if authorization:
            scheme, _, text = authorization.partition(" ")
            if scheme.lower() != "bearer" or not text.strip():
                raise Unauthenticated("the Authorization header is not a bearer token",
                                      hint="send `Authorization: Bearer tidal_<id>_<secret>`")
            bearer = self.ws.tokens.authenticate(text.strip())
            return Caller(token=bearer, via="bearer", actor=bearer.actor)
        if cookie:
            token_id, expected = self.sessions.read(cookie)
            token = self.ws.tokens.by_id(token_id)
            if token is None or not token.active(self.ws.clock.now()):
                raise Unauthenticated("the session's token is revoked or expired", hint="sign in again")
            if method.upper() not in SAFE_METHODS and not (csrf and hmac.compare_digest(csrf, expected)):
                raise Forbidden("this action needs the session's CSRF token in the X-CSRF-Token header",
                                hint="send the csrf_token that POST /api/v1/session returned")
            return Caller(token=token, via="cookie", actor=token.actor)
        raise Unauthenticated("no credentials: this API needs a token",
                              hint="send `Authorization: Bearer <token>` (create one with `tidal tokens create`)")


__all__ = ["ANONYMOUS", "COOKIE", "CSRF_HEADER", "SECRET_ENV", "SESSION_S", "Authenticator", "Caller", "Sessions",
           "session_key"]
