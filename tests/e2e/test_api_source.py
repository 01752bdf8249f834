"""`tidal run` on a project whose data.source is a JSON API (a real server on 127.0.0.1 serving sklearn's
wine data, behind a bearer token): trained, gated and registered; the token appears in nothing tidal
wrote. A bad API is refused with one line, and no snapshot is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.datasets import load_wine

from tests.api_server import TOKEN, Api, serve
from tests.conftest import _cli
from tidal import Workspace
from tidal.core.errors import SourceError

SPEC = """\
version: 1
name: wine
data:
  source:
    http: {url}/secure
    records: data.items
    paginate: {{kind: page, size_param: per_page, size: 40}}
    params: {{lang: en}}
    headers: {{Authorization: "Bearer ${{API_TOKEN}}"}}
    timeout: 5s
    retries: {{attempts: 2, backoff: 50ms}}
  target: target
model:
  estimator: sklearn.ensemble.HistGradientBoostingClassifier
  params: {{max_iter: 30}}
  seed: 0
validate:
  split: {{method: random, test_size: 0.25}}
  metrics: [accuracy]
  gates:
    - accuracy >= 0.8
"""


@pytest.fixture(scope="module")
def wine_api() -> Iterator[Api]:
    with serve(load_wine(as_frame=True).frame.to_dict("records")) as api:
        yield api


def _project(tmp_path: Path, api: Api, route: str = "/secure") -> Path:
    project = tmp_path / "wine"
    project.mkdir(parents=True)
    (project / "tidal.yaml").write_text(SPEC.format(url=api.url).replace("/secure", route))
    return project


def test_run_trains_on_the_api_and_stores_no_secret(tmp_path: Path, wine_api: Api,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", TOKEN)
    project = _project(tmp_path, wine_api)
    before = wine_api.requests["/secure"]
    proc = _cli(project)("run", check=True)
    assert wine_api.requests["/secure"] - before == 5  # 178 wines, 40 a page: 40, 40, 40, 40, 18
    with Workspace.open(project) as ws:
        model = ws.models.get("wine:champion")
        assert model.version == 1 and model.metrics["accuracy"] >= 0.8
        snapshots = ws.store.list_snapshots("wine")
        assert len(snapshots) == 1 and snapshots[0].rows == 178
        # the lineage names the API by its URL and parameters as written: the placeholder, never the value
        assert snapshots[0].source == f"{wine_api.url}/secure?lang=en"
    token = TOKEN.encode()
    leaks = [p for p in project.rglob("*") if p.is_file() and token in p.read_bytes()]
    assert not leaks, leaks  # not in the database (WAL included), an artifact, a snapshot or a log
    assert TOKEN not in proc.stdout + proc.stderr


def test_wrong_token_is_one_line_and_stores_nothing(tmp_path: Path, wine_api: Api,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", "not-the-token-4711")
    project = _project(tmp_path, wine_api)
    before = wine_api.requests["/secure"]
    with Workspace.open(project) as ws:
        with pytest.raises(SourceError, match="HTTP 401 Unauthorized: the credentials were refused") as err:
            ws.run()
        assert ws.store.list_snapshots("wine") == []
        # a failed collection is an event (issue #14 point 5) that says why, without the secret
        failed = ws.store.list_events(kind="run.failed")
        assert len(failed) == 1 and "401" in failed[0].message, [e.message for e in failed]
        assert "not-the-token-4711" not in failed[0].message + repr(failed[0].data)
    assert wine_api.requests["/secure"] - before == 1  # not retried
    assert "\n" not in str(err.value) and "not-the-token-4711" not in str(err.value)
    assert not [p for p in project.rglob("*") if p.is_file() and b"not-the-token-4711" in p.read_bytes()]


def test_a_bad_api_stores_nothing(tmp_path: Path, wine_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """In process (the CLI's one line is shown above): a malformed page, HTML, a loop of pages."""
    monkeypatch.setenv("API_TOKEN", TOKEN)
    cases = {"/malformed": "page 2 of .* is not valid JSON", "/html": "answered HTML", "/same": "endless pagination"}
    for route, needle in cases.items():
        project = _project(tmp_path / route.strip("/"), wine_api, route)
        with Workspace.open(project) as ws:
            with pytest.raises(SourceError, match=needle):
                ws.run()
            assert ws.store.list_snapshots("wine") == []
            assert ws.registry.champion("wine") is None
