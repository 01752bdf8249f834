"""The dashboard's session key: kept across a restart of `tidal ui` (a file in the workspace, owner-only), shared by
replicas through TIDAL_UI_SECRET, and refused clearly when it could not be a key."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from tests.ui.conftest import UiServer
from tidal.core.errors import TidalError
from tidal.core.tokens import ApiToken
from tidal.ui.auth import KEY_FILE, SECRET_ENV, Sessions, session_key
from tidal.workspace import Workspace

SECRET = "s" * 40


def _token() -> ApiToken:
    from datetime import UTC, datetime

    return ApiToken(id="0123456789ab", name="t", role="viewer", digest="0" * 64,
                    created_at=datetime.now(UTC), created_by="test")


def test_the_key_is_made_once_owner_only_and_read_back(tmp_path: Path) -> None:
    first = session_key(tmp_path / ".tidal", environ={})
    path = tmp_path / ".tidal" / KEY_FILE
    assert len(first) == 32 and path.read_bytes() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert session_key(tmp_path / ".tidal", environ={}) == first
    # a cookie one server signed is read by the next one on the same workspace, not by another workspace's
    cookie, csrf, _ = Sessions(first).issue(_token())
    assert Sessions(session_key(tmp_path / ".tidal", environ={})).read(cookie) == ("0123456789ab", csrf)
    other = session_key(tmp_path / "elsewhere", environ={})
    with pytest.raises(TidalError, match="session cookie is not valid"):
        Sessions(other).read(cookie)


def test_the_secret_variable_gives_every_replica_the_same_key_and_writes_nothing(tmp_path: Path) -> None:
    a = session_key(tmp_path / "a", environ={SECRET_ENV: SECRET})
    b = session_key(tmp_path / "b", environ={SECRET_ENV: SECRET})
    assert a == b and len(a) == 32 and a != SECRET.encode()[:32]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert session_key(tmp_path / "a", environ={SECRET_ENV: SECRET + "x"}) != a


@pytest.mark.parametrize("secret", ["", "short", "x" * 31])
def test_a_short_secret_is_one_clear_error(tmp_path: Path, secret: str) -> None:
    with pytest.raises(TidalError, match=f"{SECRET_ENV} has {len(secret)} characters; a session key needs at least 32"):
        session_key(tmp_path, environ={SECRET_ENV: secret})


def test_a_key_file_that_is_not_a_key_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_bytes(b"half a key")
    with pytest.raises(TidalError, match="holds 10 bytes, not a 32-byte session key") as err:
        session_key(tmp_path, environ={})
    assert "delete it" in (err.value.hint or "")
    assert (tmp_path / KEY_FILE).read_bytes() == b"half a key"


def test_a_key_that_cannot_be_kept_is_a_key_of_the_process(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Where the file cannot be made (here: its folder is a file), the process keeps a key of its own."""
    (tmp_path / "file").write_text("not a folder")
    a = session_key(tmp_path / "file" / ".tidal", environ={})
    assert len(a) == 32 and "sessions last until this server stops" in caplog.text and SECRET_ENV in caplog.text


def test_restarting_tidal_ui_keeps_the_dashboard_signed_in(project: Path) -> None:
    with Workspace.open(project) as ws:
        token = ws.tokens.create("ops", role="operator")[1]
    srv = UiServer(project).wait()
    try:
        r = httpx.post(f"{srv.url}/api/v1/session", json={"token": token})
        assert r.status_code == 200, r.text
        cookies = {"tidal_session": r.cookies["tidal_session"]}
        csrf = r.json()["csrf_token"]
    finally:
        srv.stop()
    again = UiServer(project).wait()
    try:
        r = httpx.get(f"{again.url}/api/v1/whoami", cookies=cookies)
        assert r.status_code == 200 and r.json()["token"]["role"] == "operator"
        r = httpx.post(f"{again.url}/api/v1/loop/pause", json={"reason": "after a restart"}, cookies=cookies,
                       headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        r = httpx.post(f"{again.url}/api/v1/loop/resume", json={}, cookies=cookies)
        assert r.status_code == 403  # still no action without the CSRF token
    finally:
        again.stop()
    assert token not in (project / ".tidal" / KEY_FILE).read_bytes().decode("latin-1")
