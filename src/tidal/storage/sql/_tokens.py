"""API tokens in the SQL metadata store: the :class:`~tidal.core.ports.TokenStore` part of
:class:`~tidal.storage.sql.store.SqlMetadataStore`.

Every read goes to the database (no cache): a token revoked by ``tidal tokens revoke`` in another process
is refused by the next request. A lookup is one primary-key SELECT.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidal.core.errors import StorageError
from tidal.core.tokens import ApiToken
from tidal.storage import _codec as codec
from tidal.storage.sql import _schema as t
from tidal.storage.sql._base import SqlPart


def _decode(row: Any) -> ApiToken:
    return ApiToken(id=row["id"], name=row["name"], role=row["role"], digest=row["digest"],
                    created_at=row["created_at"], created_by=row["created_by"],
                    scopes=tuple(codec.loads(row["scopes"])), expires_at=row["expires_at"],
                    revoked_at=row["revoked_at"], revoked_by=row["revoked_by"], info=codec.loads(row["info"]))


class SqlTokens(SqlPart):
    """API tokens by id, with the hash of their secret."""

    def create_token(self, token: ApiToken) -> None:
        """Store a new token; StorageError when its id is taken."""
        row = {"id": token.id, "name": token.name, "role": token.role,
               "scopes": codec.dumps(list(token.scopes), "token.scopes"), "digest": token.digest,
               "created_at": codec.utc(token.created_at), "created_by": token.created_by,
               "expires_at": codec.utc_or_none(token.expires_at), "revoked_at": codec.utc_or_none(token.revoked_at),
               "revoked_by": token.revoked_by, "info": codec.dumps(token.info, "token.info")}
        with self._write("storing a token") as conn:
            if conn.execute(sa.select(t.api_tokens.c.id).where(t.api_tokens.c.id == token.id)).first() is not None:
                raise StorageError(f"a token with id {token.id} exists already", hint="create it again")
            conn.execute(t.api_tokens.insert(), row)

    def get_token(self, token_id: str) -> ApiToken | None:
        """The token ``token_id`` (revoked or not), or None."""
        with self._read("reading a token") as conn:
            row = conn.execute(sa.select(t.api_tokens).where(t.api_tokens.c.id == token_id)).mappings().first()
        return None if row is None else _decode(row)

    def list_tokens(self) -> list[ApiToken]:
        """Every token, oldest first."""
        c = t.api_tokens.c
        with self._read("listing tokens") as conn:
            rows = conn.execute(sa.select(t.api_tokens).order_by(c.created_at, c.id)).mappings().all()
        return [_decode(r) for r in rows]

    def revoke_token(self, token_id: str, at: datetime, by: str) -> ApiToken | None:
        """Mark ``token_id`` revoked (a no-op on one revoked already); the token afterwards, or None."""
        c = t.api_tokens.c
        with self._write("revoking a token") as conn:
            conn.execute(t.api_tokens.update().where(c.id == token_id, c.revoked_at.is_(None))
                         .values(revoked_at=codec.utc(at), revoked_by=by))
            row = conn.execute(sa.select(t.api_tokens).where(c.id == token_id)).mappings().first()
        return None if row is None else _decode(row)


__all__ = ["SqlTokens"]
