"""The TokenStore contract over every metadata adapter: tokens by id, the secret never stored, a revoke seen
at once by another connection (another process reading the same database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidal.core.errors import Forbidden, StorageError, Unauthenticated
from tidal.core.ports import MetadataStore
from tidal.core.tokens import ApiToken, new_secret, parse, require_role, require_scope, verify
from tidal.storage import open_metadata_store

T0 = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)


def _token(role: str = "viewer", **kw: object) -> tuple[ApiToken, str]:
    token_id, text, digest = new_secret()
    return ApiToken(id=token_id, name=f"t-{token_id}", role=role, digest=digest, created_at=T0,
                    created_by="local:test", **kw), text  # type: ignore[arg-type]


def test_a_token_round_trips_and_is_checked_by_its_secret(store: MetadataStore) -> None:
    token, text = _token("operator", scopes=("predict",), expires_at=T0 + timedelta(days=1), info={"a": 1})
    store.create_token(token)
    assert store.get_token(token.id) == token
    assert store.get_token("000000000000") is None
    token_id, secret = parse(text)
    assert token_id == token.id and secret not in token.digest and text not in repr(token.to_dict())
    assert verify(store.get_token(token_id), secret, T0) == token
    with pytest.raises(Unauthenticated, match="unknown token"):
        verify(store.get_token(token_id), secret[:-1] + ("A" if secret[-1] != "A" else "B"), T0)
    with pytest.raises(Unauthenticated, match="expired"):
        verify(token, secret, T0 + timedelta(days=2))
    with pytest.raises(StorageError, match="exists already"):
        store.create_token(token)


def test_tokens_list_oldest_first_and_a_revoke_is_kept_with_who(store: MetadataStore) -> None:
    a, _ = _token()
    b, text = _token("admin")
    b = ApiToken(**{**b.__dict__, "created_at": T0 + timedelta(seconds=1)})
    store.create_token(b)
    store.create_token(a)
    assert [t.id for t in store.list_tokens()] == [a.id, b.id]
    revoked = store.revoke_token(b.id, T0 + timedelta(minutes=5), "local:me")
    assert revoked is not None and revoked.revoked_at == T0 + timedelta(minutes=5) and revoked.revoked_by == "local:me"
    again = store.revoke_token(b.id, T0 + timedelta(hours=1), "local:other")  # the first revoke stands
    assert again == revoked
    assert store.revoke_token("000000000000", T0, "x") is None
    with pytest.raises(Unauthenticated, match="was revoked"):
        verify(store.get_token(b.id), parse(text)[1], T0)


def test_a_revoke_through_one_connection_is_seen_by_another_at_once(sql_url: str) -> None:
    token, text = _token()
    with open_metadata_store(sql_url) as server, open_metadata_store(sql_url) as cli:  # type: ignore[attr-defined]
        cli.create_token(token)
        assert verify(server.get_token(token.id), parse(text)[1], T0).id == token.id
        cli.revoke_token(token.id, T0, "local:cli")
        with pytest.raises(Unauthenticated):
            verify(server.get_token(token.id), parse(text)[1], T0)


def test_roles_are_ordered_and_scopes_are_their_own() -> None:
    viewer, _ = _token("viewer")
    admin, _ = _token("admin")
    client, _ = _token("none", scopes=("predict",))
    require_role(admin, "operator")
    with pytest.raises(Forbidden, match="has the role viewer; this needs operator"):
        require_role(viewer, "operator")
    with pytest.raises(Forbidden):
        require_role(client, "viewer")
    require_scope(client, "predict")
    require_scope(admin, "feedback")
    with pytest.raises(Forbidden, match="lacks the scope feedback"):
        require_scope(client, "feedback")
