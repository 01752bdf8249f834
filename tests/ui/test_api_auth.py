"""The management API over a real server: who may do what, sessions and CSRF, clear 4xx answers, and no
credential in a log line or an event."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.ui.conftest import REPO, UiServer, bearer
from tidal.workspace import Workspace


def _token(project: Path, role: str, name: str) -> str:
    with Workspace.open(project) as ws:
        return ws.tokens.create(name, role=role)[1]


def test_no_token_bad_token_and_a_malformed_header_are_401(ui: UiServer) -> None:
    r = httpx.get(f"{ui.url}/api/v1/runs")
    assert r.status_code == 401
    assert r.json()["error"] == "no credentials: this API needs a token"
    assert r.headers["www-authenticate"] == "Bearer"
    unknown = "tidal_0123456789ab_" + "x" * 43
    r = httpx.get(f"{ui.url}/api/v1/runs", headers=bearer(unknown))
    assert (r.status_code, r.json()["error"]) == (401, "unknown token")
    r = httpx.get(f"{ui.url}/api/v1/runs", headers=bearer("not-a-token"))
    assert (r.status_code, r.json()["error"]) == (401, "the token is malformed")
    r = httpx.get(f"{ui.url}/api/v1/runs", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401 and "bearer" in r.json()["error"]


def test_a_viewer_reads_and_is_refused_every_action_with_403(ui: UiServer, project: Path) -> None:
    viewer = _token(project, "viewer", "reader")
    assert httpx.get(f"{ui.url}/api/v1/models", headers=bearer(viewer)).status_code == 200
    for path, body in (("/api/v1/models/elec2/promote", {"version": 1}), ("/api/v1/models/elec2/rollback", {}),
                       ("/api/v1/loop/pause", {}), ("/api/v1/loop/resume", {}), ("/api/v1/loop/retrain", {}),
                       ("/api/v1/tokens", {"name": "x"})):
        r = httpx.post(f"{ui.url}{path}", json=body, headers=bearer(viewer))
        assert r.status_code == 403, path
        assert "has the role viewer; this needs" in r.json()["error"]
    assert httpx.get(f"{ui.url}/api/v1/tokens", headers=bearer(viewer)).status_code == 403


def test_an_operator_promotes_and_rolls_back_and_each_is_an_event_naming_it(ui: UiServer, project: Path) -> None:
    operator = _token(project, "operator", "ops")
    h = bearer(operator)
    me = httpx.get(f"{ui.url}/api/v1/whoami", headers=h).json()
    assert me["token"]["role"] == "operator" and me["actor"].startswith("token:ops#")
    r = httpx.post(f"{ui.url}/api/v1/models/elec2/promote", json={"version": 1, "reason": "try v1"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "elec2", "alias": "champion", "from": 2, "to": 1}
    r = httpx.post(f"{ui.url}/api/v1/models/elec2/rollback", json={"reason": "back"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "elec2", "alias": "champion", "from": 1, "to": 2}
    moved = httpx.get(f"{ui.url}/api/v1/events", params={"kind": "alias.moved", "limit": 2}, headers=h).json()
    assert [e["data"]["actor"] for e in moved["items"]] == [me["actor"]] * 2
    assert [e["data"]["reason"] for e in moved["items"]] == ["try v1", "back"]
    # the loop's controls: pause, resume, retrain now, each an event naming the operator
    for action, kind in (("pause", "loop.paused"), ("resume", "loop.resumed"), ("retrain", "loop.retrain_requested")):
        r = httpx.post(f"{ui.url}/api/v1/loop/{action}", json={"reason": f"{action} it"}, headers=h)
        assert r.status_code == 200, r.text
        got = httpx.get(f"{ui.url}/api/v1/events", params={"kind": kind, "limit": 1}, headers=h).json()["items"]
        assert got[0]["data"] == {"actor": me["actor"], "reason": f"{action} it"}
    state = httpx.get(f"{ui.url}/api/v1/loop", headers=h).json()
    assert state["paused"] is None and state["retrain_requested"]["by"] == me["actor"]
    httpx.post(f"{ui.url}/api/v1/loop/pause", json={}, headers=h)
    assert httpx.get(f"{ui.url}/api/v1/loop", headers=h).json()["paused"]["by"] == me["actor"]
    httpx.post(f"{ui.url}/api/v1/loop/resume", json={}, headers=h)


def test_bad_input_is_a_clear_json_4xx_never_a_500(ui: UiServer, project: Path, admin: str) -> None:
    h = bearer(admin)
    cases = [
        (httpx.get(f"{ui.url}/api/v1/models/nope/versions/1", headers=h), 404, "model 'nope' has no version 1"),
        (httpx.get(f"{ui.url}/api/v1/models/elec2/versions/99", headers=h), 404, "99"),
        (httpx.post(f"{ui.url}/api/v1/models/elec2/promote", json={"version": 3}, headers=h), 409,
         "elec2:3 is rejected and cannot be champion"),
        (httpx.post(f"{ui.url}/api/v1/models/elec2/promote", json={"version": 99}, headers=h), 404, "99"),
        (httpx.post(f"{ui.url}/api/v1/models/nope/promote", json={"version": 1}, headers=h), 404,
         "no model named 'nope'"),
        (httpx.post(f"{ui.url}/api/v1/models/elec2/promote", json={"version": "two"}, headers=h), 422, "version"),
        (httpx.post(f"{ui.url}/api/v1/models/elec2/promote", json={"version": 1, "x": 1}, headers=h), 422, "x"),
        (httpx.post(f"{ui.url}/api/v1/models/elec2/promote", content=b"{not json", headers=h), 422, ""),
        (httpx.get(f"{ui.url}/api/v1/runs/zz", headers=h), 404, ""),
        (httpx.get(f"{ui.url}/api/v1/runs", params={"limit": 0}, headers=h), 422, "limit"),
        (httpx.get(f"{ui.url}/api/v1/reports/ffffffffffff", headers=h), 404, "no report"),
        (httpx.post(f"{ui.url}/api/v1/tokens", json={"name": "bad", "role": "king"}, headers=h), 400,
         "unknown role 'king'"),
        (httpx.delete(f"{ui.url}/api/v1/tokens/000000000000", headers=h), 404, "no token '000000000000'"),
        (httpx.get(f"{ui.url}/api/v1/nothing", headers=h), 404, "no endpoint"),
    ]
    for r, status, text in cases:
        assert r.status_code == status, (r.request.url, r.text)
        assert text in r.json()["error"], r.text
    assert httpx.get(f"{ui.url}/api/v1/models", headers=h).json()["items"][1]["aliases"] == ["champion"]


def test_a_revoked_token_stops_at_once_even_revoked_by_another_process(ui: UiServer, project: Path,
                                                                        admin: str) -> None:
    token = _token(project, "viewer", "short-lived")
    assert httpx.get(f"{ui.url}/api/v1/runs", headers=bearer(token)).status_code == 200
    token_id = token.split("_")[1]
    # revoked by the CLI, in its own process: the server refuses the very next request
    subprocess.run([sys.executable, "-m", "tidal", "-C", str(project), "tokens", "revoke", token_id], check=True,
                   capture_output=True, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    r = httpx.get(f"{ui.url}/api/v1/runs", headers=bearer(token))
    assert (r.status_code, r.json()["error"]) == (401, f"token {token_id} was revoked")
    # and by the API
    other = _token(project, "operator", "other")
    assert httpx.delete(f"{ui.url}/api/v1/tokens/{other.split('_')[1]}", headers=bearer(admin)).status_code == 200
    assert httpx.get(f"{ui.url}/api/v1/runs", headers=bearer(other)).status_code == 401


def test_admin_creates_lists_and_revokes_tokens_and_never_sees_a_secret(ui: UiServer, admin: str) -> None:
    h = bearer(admin)
    r = httpx.post(f"{ui.url}/api/v1/tokens", json={"name": "made-by-api", "role": "viewer",
                                                     "expires_in_days": 1}, headers=h)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["token"].startswith(f"tidal_{made['id']}_") and made["created_by"].startswith("token:root#")
    assert httpx.get(f"{ui.url}/api/v1/runs", headers=bearer(made["token"])).status_code == 200
    listed = httpx.get(f"{ui.url}/api/v1/tokens", headers=h)
    assert made["id"] in listed.text and made["token"].split("_")[2] not in listed.text
    assert all("digest" not in t and "token" not in t for t in listed.json())


def test_the_session_cookie_is_httponly_strict_and_needs_csrf_on_every_action(ui: UiServer, project: Path) -> None:
    operator = _token(project, "operator", "dashboard")
    with httpx.Client(base_url=ui.url) as browser:
        r = browser.post("/api/v1/session", json={"token": operator})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert operator not in cookie and operator.split("_")[2] not in cookie
        csrf = r.json()["csrf_token"]
        assert browser.get("/api/v1/runs").status_code == 200  # a read needs no CSRF token
        r = browser.post("/api/v1/loop/pause", json={})
        assert r.status_code == 403 and "CSRF" in r.json()["error"]
        r = browser.post("/api/v1/loop/pause", json={}, headers={"X-CSRF-Token": "guess"})
        assert r.status_code == 403
        r = browser.post("/api/v1/loop/resume", json={}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        value = browser.cookies["tidal_session"]
        payload, _, signature = value.partition(".")
    # forged: a payload naming another token, re-signed with a guessed key; a flipped signature; garbage
    import base64
    import hashlib
    import hmac

    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged_payload = base64.urlsafe_b64encode(json.dumps({**data, "exp": data["exp"] + 10**6}).encode()).decode()
    forged_sig = base64.urlsafe_b64encode(hmac.new(b"guess", forged_payload.encode(), hashlib.sha256).digest())
    for forged in (f"{forged_payload}.{forged_sig.decode()}", f"{payload}.{signature[::-1]}",
                   f"{forged_payload}.{signature}", "garbage"):
        r = httpx.get(f"{ui.url}/api/v1/runs", cookies={"tidal_session": forged})
        assert (r.status_code, r.json()["error"]) == (401, "the session cookie is not valid"), forged
    # revoking the token ends its sessions at once
    with Workspace.open(project) as ws:
        ws.tokens.revoke("dashboard")
    r = httpx.get(f"{ui.url}/api/v1/runs", cookies={"tidal_session": value})
    assert r.status_code == 401


def test_the_docs_are_served_from_local_files_only(ui: UiServer) -> None:
    for page in ("/api/docs", "/api/redoc"):
        html = httpx.get(f"{ui.url}{page}").text
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html) + re.findall(r"https?://[^\s\"')]+", html)
        assert urls, page
        assert not [u for u in urls if u.startswith(("http:", "https:", "//"))], (page, urls)
        for u in re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html):
            assert httpx.get(f"{ui.url}{u}").status_code == 200, u
    spec = httpx.get(f"{ui.url}/api/v1/openapi.json").json()
    assert "/api/v1/models/{name}/promote" in spec["paths"] and "/api/v1/loop/pause" in spec["paths"]


def test_no_token_or_secret_reaches_the_log_or_an_event(ui: UiServer, project: Path, admin: str) -> None:
    """Runs last in this module: every token the tests above made and sent is searched for."""
    with Workspace.open(project) as ws:
        ids = {t.id for t in ws.tokens.list()}
        events = json.dumps([e.data for e in ws.events(limit=10_000)]) + " ".join(
            e.message for e in ws.events(limit=10_000))
    log = ui.log.read_text()
    assert "GET /api/v1/runs" in log  # the access log is there, and holds the paths only
    secret = admin.split("_", 2)[2]
    for text in (log, events):
        assert secret not in text and "tidal_" not in text and "Bearer" not in text and "tidal_session=" not in text
    assert any(i in events for i in ids)  # events name tokens by id


def test_ui_refuses_to_start_without_tokens_and_no_auth_off_loopback(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from tidal.cli.main import main

    root = tmp_path / "p"
    (root).mkdir()
    (root / "tidal.yaml").write_text("version: 1\nname: p\ndata: {source: d.csv, target: y}\n"
                                    "model: {estimator: sklearn.linear_model.LogisticRegression}\n")
    assert main(["-C", str(root), "ui", "--port", "0"]) == 2
    assert "no API token exists, so nobody could sign in" in capsys.readouterr().err
    assert main(["-C", str(root), "ui", "--no-auth", "--host", "0.0.0.0"]) == 2
    assert "--no-auth is refused on 0.0.0.0" in capsys.readouterr().err
    with Workspace.open(root) as ws:  # a token with no API role does not count: nobody could sign in with it
        ws.tokens.create("app", role="none", scopes=["predict"])
    assert main(["-C", str(root), "ui", "--port", "0"]) == 2


def test_no_auth_acts_as_anonymous_on_loopback(project: Path) -> None:
    srv = UiServer(project, "--no-auth")
    try:
        srv.wait()
        me = httpx.get(f"{srv.url}/api/v1/whoami").json()
        assert me["actor"] == "anonymous (tidal ui --no-auth)" and me["token"] is None
    finally:
        srv.stop()
