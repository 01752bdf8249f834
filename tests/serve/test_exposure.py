"""What the server lets a browser do and what its answers give away (issue #9, point 6).

``/predict`` and ``/feedback`` take only JSON bodies (``text/plain``, forms and multipart are what a web
page can make a visitor's browser post to a local server without asking it first); no answer carries
CORS headers; no answer shows the process id or a filesystem path (they stay in the server log); ``HEAD``
answers as ``GET`` does; a server listening beyond loopback warns that it has no authentication.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve.server import REPO, ServerProcess, eventually
from tests.serve.test_app import running
from tests.serve.test_http import ROW

BODY = json.dumps({"instances": [ROW]}).encode()
NOT_JSON = ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x", "application/jsonp", "application/json-seq")


@pytest.fixture(scope="module")
def served(served_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    root = tmp_path_factory.mktemp("exposure") / "elec2"
    shutil.copytree(served_template, root)
    with ServerProcess(root) as srv:
        yield srv, root


@pytest.fixture
def http(served: tuple[ServerProcess, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[0].url, timeout=10) as client:
        yield client


def stored(root: Path) -> int:
    from tidal import Workspace

    with Workspace.open(root) as ws:
        return ws.predictions.count(model="elec2")


def test_only_json_bodies_are_accepted(served: tuple[ServerProcess, Path], http: httpx.Client) -> None:
    _, root = served
    pid = http.post("/predict", json={"instances": [ROW]}).json()["prediction_ids"][0]
    before = stored(root)
    label = json.dumps({"prediction_id": pid, "label": 1}).encode()
    for path, body in (("/predict", BODY), ("/feedback", label)):
        for kind in (*NOT_JSON, None):
            headers = {"content-type": kind} if kind is not None else {}
            resp = http.post(path, content=body, headers=headers)
            assert resp.status_code == 415, (path, kind, resp.status_code, resp.text)
            assert resp.headers["content-type"] == "application/json"
            assert "Content-Type: application/json" in resp.json()["error"], resp.text
    assert stored(root) == before  # nothing refused was predicted and stored
    for kind in ("application/json; charset=utf-8", "Application/JSON", "application/vnd.example+json"):
        assert http.post("/predict", content=BODY, headers={"content-type": kind}).status_code == 200, kind
    assert http.post("/feedback", content=label, headers={"content-type": "application/json"}).json() == {"stored": 1}
    spec = http.get("/openapi.json").json()
    for path in ("/predict", "/feedback"):
        assert "415" in spec["paths"][path]["post"]["responses"]
        assert list(spec["paths"][path]["post"]["requestBody"]["content"]) == ["application/json"]


def test_the_fastapi_routes_refuse_other_content_types_too(project: Path) -> None:
    """``/predict`` and ``/feedback`` as declared to FastAPI (the docs' routes) behave as the hot path does."""
    async def scenario() -> None:
        from tidal.serve import create_app

        app = create_app(project)
        async with running(app):
            transport = httpx.ASGITransport(app=app.fastapi)
            async with httpx.AsyncClient(transport=transport, base_url="http://tidal") as inner:
                refused = await inner.post("/predict", content=BODY, headers={"content-type": "text/plain"})
                assert refused.status_code == 415 and "application/json" in refused.json()["error"]
                ok = await inner.post("/predict", content=BODY, headers={"content-type": "application/json"})
                assert ok.status_code == 200, ok.text

    asyncio.run(scenario())


def test_no_cors_headers_not_even_for_a_preflight(http: httpx.Client) -> None:
    origin = {"origin": "https://evil.example"}
    answers = [
        http.options("/predict", headers={**origin, "access-control-request-method": "POST",
                                          "access-control-request-headers": "content-type"}),
        http.options("/model", headers={**origin, "access-control-request-method": "GET"}),
        http.post("/predict", json={"instances": [ROW]}, headers=origin),
        http.get("/model", headers=origin),
    ]
    for resp in answers:
        assert not [h for h in resp.headers if h.lower().startswith("access-control-")], resp.headers
    assert answers[2].status_code == 200


def paths_in(doc: Any) -> list[str]:
    """The strings in ``doc`` that look like absolute paths, and the keys named ``pid``."""
    found: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "pid":
                found.append("pid")
            found += paths_in(value)
    elif isinstance(doc, list):
        for value in doc:
            found += paths_in(value)
    elif isinstance(doc, str) and ("/tmp" in doc or "/.tidal" in doc or "sqlite:" in doc):
        found.append(doc)
    return found


def test_no_process_id_or_path_in_answers(served: tuple[ServerProcess, Path], http: httpx.Client) -> None:
    srv, root = served
    answer = http.post("/predict", json={"instances": [ROW]})
    assert answer.status_code == 200 and "x-tidal-worker" not in answer.headers
    assert http.get("/healthz").json() == {"status": "ok"}
    for path in ("/readyz", "/model"):
        resp = http.get(path)
        assert resp.status_code == 200 and paths_in(resp.json()) == [], resp.text
        assert str(root) not in resp.text
    assert f"[{srv.proc.pid}]" in srv.log_text()  # the process id is in the server log  # type: ignore[union-attr]


def test_head_answers_as_get(http: httpx.Client) -> None:
    for path in ("/healthz", "/readyz", "/model", "/metrics", "/docs", "/openapi.json", "/predict", "/nowhere"):
        get = http.get(path)
        head = http.head(path)
        assert head.status_code == get.status_code, (path, head.status_code, get.status_code)
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"], path
        if path not in ("/metrics",):  # the metrics move between the two requests
            assert head.headers["content-length"] == get.headers["content-length"], path


def test_readyz_and_503s_name_what_failed_but_no_path(project: Path) -> None:
    """A champion whose artifact is missing: /readyz and /predict say which version failed, why, and what to
    do, without the artifact store's path; the server log has the full message."""
    from tidal import Workspace

    with Workspace.open(project) as ws:
        digest = ws.registry.get("elec2", 1).artifact_digest
    artifact = next(p for p in (project / ".tidal" / "artifacts").rglob("*") if p.is_file() and digest in p.name)
    artifact.unlink()
    with ServerProcess(project).start(ready=False) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        def answered() -> httpx.Response | None:
            try:
                resp = http.get("/readyz")
            except httpx.TransportError:
                return None
            return resp if "could not be loaded" in resp.text else None

        ready = eventually(answered, 30, "a /readyz answer about the failed load")
        predict = http.post("/predict", json={"instances": [ROW]})
        model = http.get("/model")
    for resp in (ready, predict, model):
        assert resp.status_code == 503, resp.text
        message = resp.json()["error"]
        assert "elec2:1 could not be loaded" in message and "missing" in message, message
        assert "restore the artifact folder" in message, message  # the hint
        assert str(project) not in resp.text and "/tmp" not in resp.text, resp.text
    assert str(project / ".tidal" / "artifacts") in srv.log_text()


#: Runs ``tidal serve`` (argv[1:]) with the step that would listen replaced by one that prints what it was given.
DRY_SERVE = """
import sys
import tidal.serve.server as server
server._serve = lambda config: print("would listen on", repr(config.host), config.port)
from tidal.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def dry_serve(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-c", DRY_SERVE, "serve", *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done


def test_listening_beyond_loopback_warns(project: Path) -> None:
    """``tidal serve --host 0.0.0.0`` (or ``deploy.host``) warns; loopback does not. The server is not really
    started on such an address (tests listen on 127.0.0.1 only): the step that would listen is replaced by
    one that prints the address it was given, in a subprocess of its own."""
    from tidal.serve.server import exposure_warning

    for host in ("0.0.0.0", "::", "192.0.2.7", "example.invalid", ""):
        assert "no authentication" in str(exposure_warning(host)), host
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert exposure_warning(host) is None, host

    loud = dry_serve("--host", "0.0.0.0", "--port", "0", "--project", str(project))
    assert "would listen on '0.0.0.0'" in loud.stdout
    warning = [ln for ln in loud.stderr.splitlines() if "no authentication" in ln]
    assert len(warning) == 1 and "WARNING" in warning[0] and "0.0.0.0" in warning[0], loud.stderr
    assert "predict" in warning[0] and "label" in warning[0]
    quiet = dry_serve("--host", "127.0.0.1", "--port", "0", "--project", str(project))
    assert "would listen on '127.0.0.1'" in quiet.stdout and "no authentication" not in quiet.stderr
    spec = project / "tidal.yaml"
    spec.write_text(spec.read_text().replace("\ndeploy: {", "\ndeploy: {host: 0.0.0.0, ", 1))
    from_spec = dry_serve("--port", "0", "--project", str(project))
    assert "would listen on '0.0.0.0'" in from_spec.stdout and "no authentication" in from_spec.stderr
