"""Canary and shadow trials in the real server, over HTTP (docs/deploy.md).

The served template has version 1 as champion and version 2 under the ``challenger`` alias. With
``deploy.strategy`` canary the server answers an exact share of the requests with the challenger; with
shadow it answers every request with the champion and logs the challenger's answers as ``<id>.shadow``;
with direct it ignores the challenger. A challenger that cannot load, or raises, never fails a request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.serve.server import ServerProcess, eventually
from tests.serve.test_http import ROW, metric

pytestmark = pytest.mark.slow  # real servers, a few hundred requests each

T = TypeVar("T")


def set_strategy(project: Path, strategy: str) -> None:
    """Put ``strategy`` (YAML flow text) into the project's ``deploy`` section."""
    spec = project / "tidal.yaml"
    text = spec.read_text()
    if "\ndeploy: {" in text:
        text = text.replace("\ndeploy: {", f"\ndeploy: {{strategy: {strategy}, ", 1)
    else:
        text += f"deploy: {{strategy: {strategy}, reload_seconds: 0.2}}\n"
    spec.write_text(text)


def row(i: int) -> dict[str, float]:
    """Rows that differ from one another (so that the two versions do not always agree)."""
    return {**ROW, "period": (i % 48) / 48, "nswprice": 0.03 + (i % 17) / 200, "nswdemand": (i % 23) / 23}


def deployment(http: httpx.Client) -> dict[str, Any]:
    info = http.get("/model")
    assert info.status_code == 200, info.text
    doc: dict[str, Any] = info.json()["deployment"]
    return doc


def challenger_is(http: httpx.Client, version: int | None) -> Callable[[], dict[str, Any] | None]:
    def probe() -> dict[str, Any] | None:
        doc = deployment(http)
        found = doc["challenger"]["version"] if doc["challenger"] else None
        return doc if found == version else None

    return probe


def assert_no_500_on_bad_input(http: httpx.Client) -> None:
    for body in (b"", b"{", b"[]", b'{"instances": []}', b'{"instances": [{"period": "x"}]}',
                 b'{"instances": [{"nope": 1}]}'):
        answer = http.post("/predict", content=body, headers={"content-type": "application/json"})
        assert 400 <= answer.status_code < 500, (body, answer.status_code, answer.text)
        assert "error" in answer.json()


def test_canary_answers_an_exact_share_and_follows_the_alias(project: Path) -> None:
    from tidal import Workspace
    from tidal.registry import CHALLENGER

    set_strategy(project, "{canary: {percent: 20, min_requests: 50}}")
    n = 200
    with ServerProcess(project) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        doc = eventually(challenger_is(http, 2), what="the canary loading")
        assert doc["strategy"] == "canary" and doc["champion"] == {"name": "elec2", "version": 1}
        assert doc["challenger"]["mode"] == "canary" and doc["challenger"]["percent"] == 20
        # refused requests take no canary turn: the share below stays exact
        assert_no_500_on_bad_input(http)
        answers = []
        for i in range(n):
            instances = [row(i)] if i % 7 else [row(i), row(i + 1), row(i + 2)]  # every 7th: 3 rows
            answer = http.post("/predict", json={"instances": instances})
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
        versions = [a["model"]["version"] for a in answers]
        assert Counter(versions) == {1: 160, 2: 40}
        # deterministic, evenly spread: at 20 % every fifth request goes to the challenger
        assert [i for i, v in enumerate(versions) if v == 2] == list(range(4, n, 5))
        routed = deployment(http)["challenger"]["routed"]
        assert routed == {"requests": n, "to_challenger": 40}

        with Workspace.open(project) as ws:
            for a in answers:
                stored = [ws.predictions.get(pid) for pid in a["prediction_ids"]]
                # every row of a request by the version that answered it, logged as such
                expected = ("canary", 2) if a["model"]["version"] == 2 else ("direct", 1)
                assert {(p.deployment, p.version, p.served) for p in stored} == {(*expected, True)}
                assert len({p.request_id for p in stored}) == 1
            log = ws.predictions.window(model="elec2")
            assert Counter((p.version, p.deployment) for p in log) == {
                (1, "direct"): sum(len(a["prediction_ids"]) for a in answers if a["model"]["version"] == 1),
                (2, "canary"): sum(len(a["prediction_ids"]) for a in answers if a["model"]["version"] == 2)}
        # feedback attaches to a canary answer as to any other
        canary_id = next(a for a in answers if a["model"]["version"] == 2)["prediction_ids"][0]
        assert http.post("/feedback", json={"prediction_id": canary_id, "label": 1}).json() == {"stored": 1}

        text = http.get("/metrics").text
        assert metric(text, "tidal_deployment_requests_total", version="2", deployment="canary") == 40
        assert metric(text, "tidal_deployment_requests_total", version="1", deployment="direct") == 160
        assert metric(text, "tidal_deployment_rows_total", version="2", deployment="canary") == sum(
            len(a["prediction_ids"]) for a in answers if a["model"]["version"] == 2)
        assert metric(text, "tidal_challenger_version", model="elec2", deployment="canary") == 2
        assert metric(text, "tidal_challenger_errors_total") == 0

        # the challenger alias deleted: the trial ends, the champion answers everything
        with Workspace.open(project) as ws:
            ws.store.delete_alias("elec2", CHALLENGER)
        doc = eventually(challenger_is(http, None), what="the trial ending")
        assert "no challenger alias" in doc["challenger_status"]
        assert {http.post("/predict", json={"instances": [row(i)]}).json()["model"]["version"]
                for i in range(20)} == {1}
        assert metric(http.get("/metrics").text, "tidal_challenger_version", deployment="canary") == 0

        # a challenger again, then promoted by hand: the loaded challenger becomes the champion, and the
        # trial ends in the same swap (a version never competes with itself)
        with Workspace.open(project) as ws:
            ws.promote("elec2", 2, alias=CHALLENGER, reason="canary test")
        eventually(challenger_is(http, 2), what="the canary coming back")
        with Workspace.open(project) as ws:
            ws.promote("elec2", 2, reason="canary test: promoted by hand")
        doc = eventually(lambda: (d := deployment(http))["champion"]["version"] == 2 and d, what="the promotion")
        assert doc["challenger"] is None
        assert "the challenger is the champion" in doc["challenger_status"] \
            or "became the champion" in doc["challenger_status"]
        after = [http.post("/predict", json={"instances": [row(i)]}).json()["model"]["version"] for i in range(20)]
        assert set(after) == {2}
    assert "loaded already" in srv.log_text()


def test_shadow_answers_with_the_champion_and_logs_the_challenger(project: Path) -> None:
    from tidal import Workspace

    set_strategy(project, "shadow")
    with ServerProcess(project) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        doc = eventually(challenger_is(http, 2), what="the shadow loading")
        assert doc["strategy"] == "shadow" and doc["challenger"]["mode"] == "shadow"
        assert_no_500_on_bad_input(http)
        answers = []
        for i in range(40):
            instances = [row(i)] if i % 5 else [row(i), row(i + 1), row(i + 2), row(i + 3)]
            answer = http.post("/predict", json={"instances": instances})
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
        assert {a["model"]["version"] for a in answers} == {1}
        ids = [pid for a in answers for pid in a["prediction_ids"]]

        with Workspace.open(project) as ws:
            log = ws.predictions
            eventually(lambda: log.count(model="elec2", served=False) == len(ids), what="every shadow row logged")
            served = log.window(model="elec2")
            assert {p.id for p in served} == set(ids)  # window() (served=True) holds no shadow row
            assert {(p.version, p.deployment) for p in served} == {(1, "direct")}
            shadows = log.window(model="elec2", served=False)
            assert {(p.version, p.deployment, p.served) for p in shadows} == {(2, "shadow", False)}
            assert log.window(model="elec2", deployment="shadow") == []  # served=True by default
            for p in served:
                s = log.get(f"{p.id}.shadow")
                assert s.inputs == p.inputs and s.request_id == p.request_id and s.time == p.time
                assert s.output in (0, 1) and s.proba is not None and len(s.proba) == 2
            differ = sum(log.get(f"{p.id}.shadow").proba != p.proba for p in served)
            assert differ > 0  # another model answered, not a copy of the champion's answer
        # feedback on a champion answer works as before (the controller pairs it with the shadow row)
        assert http.post("/feedback", json={"prediction_id": ids[0], "label": 0}).json() == {"stored": 1}

        text = http.get("/metrics").text
        assert metric(text, "tidal_deployment_rows_total", version="2", deployment="shadow") == len(ids)
        assert metric(text, "tidal_deployment_rows_total", version="1", deployment="direct") == len(ids)
        assert metric(text, "tidal_deployment_requests_total", version="2", deployment="shadow") == len(answers)
        assert metric(text, "tidal_rows_predicted_total", model="elec2") == len(ids)  # served rows only
        assert metric(text, "tidal_challenger_version", deployment="shadow") == 2


def test_direct_ignores_the_challenger_alias(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        doc = deployment(http)
        assert doc["strategy"] == "direct" and doc["challenger"] is None
        assert "ignored" in doc["challenger_status"]
        versions = {http.post("/predict", json={"instances": [row(i)]}).json()["model"]["version"]
                    for i in range(30)}
        assert versions == {1}
        assert metric(http.get("/metrics").text, "tidal_deployment_requests_total", deployment="direct") == 30


def test_a_challenger_that_cannot_load_never_disturbs_the_champion(project: Path) -> None:
    from tidal import Workspace
    from tidal.registry import CHALLENGER

    with Workspace.open(project) as ws:
        good = ws.registry.get("elec2", 2)
        broken = ws.registry.register(replace(good, version=0, artifact_digest=ws.artifacts.put(b"not a model")),
                                      reason="a corrupt artifact, for the test")
        ws.registry.set_alias("elec2", CHALLENGER, broken.version, reason="test")
    set_strategy(project, "{canary: {percent: 50}}")
    with ServerProcess(project) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        doc = deployment(http)
        assert doc["challenger"] is None and "could not be loaded" in doc["challenger_status"]
        statuses = Counter()
        for i in range(40):
            answer = http.post("/predict", json={"instances": [row(i)]})
            statuses[(answer.status_code, answer.json().get("model", {}).get("version"))] += 1
        assert statuses == {(200, 1): 40}
        # the alias moves to a good version: the canary starts, without a restart
        with Workspace.open(project) as ws:
            ws.registry.set_alias("elec2", CHALLENGER, 2, reason="test")
        eventually(challenger_is(http, 2), what="the good challenger loading")
        versions = Counter(http.post("/predict", json={"instances": [row(i)]}).json()["model"]["version"]
                           for i in range(40))
        assert versions == {1: 20, 2: 20}
    assert f"challenger elec2:{broken.version} is not served" in srv.log_text()


def _colors_with_a_robust_champion(colors: Path) -> None:
    """Colors: version 2 (one-hot, ignores unseen colors) becomes champion; version 1 (whose encoder
    raises on an unseen color) the challenger."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from tidal import Workspace
    from tidal.registry import CHALLENGER, CHAMPION
    from tidal.train.flavors import flavor_for

    df = pd.read_csv(colors / "data" / "colors.csv")
    model = Pipeline([
        ("prepare", ColumnTransformer([("categorical", OneHotEncoder(handle_unknown="ignore"), ["color"]),
                                       ("numeric", "passthrough", ["size"])])),
        ("model", LogisticRegression()),
    ]).fit(df[["color", "size"]].astype({"color": object}), df["y"])
    with Workspace.open(colors) as ws:
        first = ws.registry.get("colors", 1)
        flavor = flavor_for(model)
        second = ws.registry.register(replace(first, version=0, artifact_digest=ws.artifacts.put(flavor.save(model))),
                                      reason="a champion that ignores unseen colors")
        ws.registry.set_alias("colors", CHAMPION, second.version, reason="test")
        ws.registry.set_alias("colors", CHALLENGER, first.version, reason="test")


@pytest.mark.parametrize("kind", ["canary", "shadow"])
def test_a_challenger_that_raises_never_fails_a_request(colors: Path, kind: str) -> None:
    from tidal import Workspace
    from tidal.core.errors import PredictionNotFound

    _colors_with_a_robust_champion(colors)
    set_strategy(colors, "{canary: {percent: 50}}" if kind == "canary" else "shadow")
    with ServerProcess(colors) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        eventually(challenger_is(http, 1), what="the challenger loading")
        unseen = [http.post("/predict", json={"instances": [{"color": "purple", "size": i / 10}]}) for i in range(20)]
        assert {(a.status_code, a.json()["model"]["version"]) for a in unseen} == {(200, 2)}
        known = [http.post("/predict", json={"instances": [{"color": "red", "size": i / 10}]}) for i in range(20)]
        assert {a.status_code for a in known} == {200}
        versions = Counter(a.json()["model"]["version"] for a in known)
        assert versions == ({1: 10, 2: 10} if kind == "canary" else {2: 20})
        # the challenger failed on every unseen color: counted, and the champion answered each
        failures = 10 if kind == "canary" else 20

        def counted() -> str | None:
            text = http.get("/metrics").text
            return text if metric(text, "tidal_challenger_errors_total", deployment=kind) >= failures else None

        text = eventually(counted, what="the challenger's failures counted")
        assert metric(text, "tidal_challenger_errors_total", deployment=kind) == failures
        if kind == "shadow":
            with Workspace.open(colors) as ws:
                eventually(lambda: ws.predictions.count(model="colors", served=False) == 20,
                           what="the shadow rows of the known colors")
                for a in unseen:
                    with pytest.raises(PredictionNotFound):
                        ws.predictions.get(a.json()["prediction_ids"][0] + ".shadow")
    log = srv.log_text()
    assert f"{kind} colors:1 failed" in log and "Traceback" in log
