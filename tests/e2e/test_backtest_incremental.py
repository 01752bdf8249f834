"""Issue #11, point 5: retrain.mode: incremental. A retrain continues the champion's fitted pipeline on the
rows labelled since it was trained (partial_fit), and the challenger takes the refit challenger's way: the
same gate, registration, lineage (naming the version it continued) and promotion. On real data (Elec2, cut),
through the CLI and the SDK; and what cannot be continued is refused, one line, nothing stored."""

from __future__ import annotations

import dataclasses
import gzip
import json
import uuid
from datetime import timedelta
from pathlib import Path

import pandas as pd

from tests.conftest import ELEC2, _cli
from tests.e2e.refusals import fails
from tidal import Workspace
from tidal.cli import exits
from tidal.core.clock import SimulatedClock
from tidal.core.entities import Feedback, ModelState, Prediction
from tidal.data.sources import read_source
from tidal.loop.backtest import run_backtest
from tidal.registry import CHAMPION
from tidal.train.flavors import get_flavor

SPEC = """\
version: 1
name: {name}
data:
  source: data.csv
  target: {target}
model:
  estimator: {estimator}
  params: {params}
  seed: 0
validate:
  split: {{method: time, test_size: 0.2}}
  metrics: [accuracy]
  gates: [accuracy >= champion - 0.03]
deploy:
  strategy: direct
  rollback: {{metric: accuracy, drop: 0.03, after_rows: 500}}
monitor: {{window: 500}}
retrain:
  mode: {mode}
  on:
    new_data: {{rows: 500}}
  cooldown: {{rows: 500}}
  max_per_day: 1000
  min_labelled: 200
backtest:
  initial_rows: 1000
  tick_rows: 250
"""


def _elec2(rows: int) -> pd.DataFrame:
    """The first ``rows`` rows of the Elec2 example (real data, shipped with tidal)."""
    text = gzip.decompress((ELEC2 / "data" / "elec2.csv.gz").read_bytes()).decode()
    return pd.read_csv(pd.io.common.StringIO(text), nrows=rows)


def _project(root: Path, frame: pd.DataFrame, *, estimator: str = "sklearn.linear_model.SGDClassifier",
             params: str = "{loss: log_loss}", mode: str = "incremental", target: str = "up",
             name: str = "inc") -> Path:
    root.mkdir(parents=True)
    frame.to_csv(root / "data.csv", index=False)
    (root / "tidal.yaml").write_text(SPEC.format(name=name, estimator=estimator, params=params, mode=mode,
                                                 target=target))
    return root


def _set_mode(root: Path, mode: str) -> None:
    text = (root / "tidal.yaml").read_text()
    (root / "tidal.yaml").write_text(text.replace("mode: refit", f"mode: {mode}"))


def _prepare_bytes(ws: Workspace, version: int) -> bytes:
    model = ws.models.load(f"{ws.spec.name}:{version}")
    return get_flavor("sklearn").save(model.named_steps["prepare"])


def test_an_incremental_backtest_on_elec2_retrains_and_promotes_through_the_cli(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", _elec2(4000))
    proc = _cli(root)("backtest", "--json")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    result = json.loads(proc.stdout)
    loop = result["loop"]
    assert loop["retrains"] > 0 and loop["failures"] == 0 and loop["first_failure"] is None, loop
    assert loop["promotions"] >= 1, loop
    assert loop["promotions"] + loop["rejections"] + loop["failures"] + loop["pending"] == loop["retrains"]
    assert result["metric"] == "accuracy" and 0.5 < loop["score"] <= 1.0, result
    assert result["rows"] == 3000 and result["initial_rows"] == 1000


def test_each_version_of_an_incremental_backtest_names_the_champion_it_continued(tmp_path: Path) -> None:
    """The same replay in-process, in the project's own stores, so the versions can be read afterwards."""
    root = _project(tmp_path / "p", _elec2(4000))
    with Workspace.open(root, clock=SimulatedClock()) as ws:
        data = read_source(ws.spec.data.source, base_dir=root)
        result = run_backtest(dataclasses.replace(ws.context(), heartbeat_s=None), data)
        assert result.loop["retrains"] > 0 and result.loop["failures"] == 0, result.loop
        versions = {mv.version: mv for mv in ws.models.list()}
        assert len(versions) == 1 + result.loop["retrains"]
        assert versions[1].lineage.continued_from is None  # the first champion was fitted on the first rows
        first_prepare = _prepare_bytes(ws, 1)
        promoted = [e for e in ws.events(kind="alias.moved", limit=10_000)
                    if e.data.get("alias") == CHAMPION and e.data.get("run_id") and e.data.get("from")]
        assert len(promoted) == result.loop["promotions"] >= 1
        for event in promoted:  # a promotion moves the alias over the champion its version continued
            mv = versions[event.data["to"]]
            assert mv.lineage.continued_from == {"name": "inc", "version": event.data["from"]}, mv.lineage
        labelled = ws.predictions.window(model="inc", labelled=True)
        for version, mv in versions.items():
            if version == 1:
                continue
            parent = mv.lineage.continued_from
            assert parent is not None and parent["name"] == "inc" and parent["version"] < version, mv.lineage
            assert _prepare_bytes(ws, version) == first_prepare  # prepare stays fitted on the first rows
            # it learned the rows labelled after its parent's training run started and before its own
            since = ws.store.get_run(versions[parent["version"]].run_id).started_at
            until = ws.store.get_run(mv.run_id).started_at
            learned = sum(since < p.label_time <= until for p in labelled if p.label_time is not None)
            assert ws.store.get_snapshot(mv.lineage.snapshot).rows == learned > 0, (version, learned)


def _serve(ws: Workspace, frame: pd.DataFrame, clock: SimulatedClock, *, labels: list | None = None) -> None:
    """Answer ``frame`` with the champion, log the answers and, a minute later, their labels."""
    mv = ws.models.get("inc:champion")
    model = ws.models.load(f"inc:{mv.version}")
    X = frame.drop(columns=["up"])
    pred = model.predict(X)
    clock.advance(timedelta(minutes=1))
    preds = [Prediction(id=uuid.uuid4().hex, time=clock.now(), model="inc", version=mv.version,
                        inputs=row, output=int(p)) for row, p in zip(X.to_dict(orient="records"), pred, strict=True)]
    ws.predictions.append(preds)
    clock.advance(timedelta(minutes=1))
    truth = list(frame["up"]) if labels is None else labels
    ws.predictions.add_feedback([Feedback(prediction_id=p.id, label=int(y), time=clock.now())
                                 for p, y in zip(preds, truth, strict=True)])


def _stored(ws: Workspace) -> tuple:
    """What a refusal must leave as it was: versions, aliases, runs, events and the loop's state."""
    return ([(mv.version, mv.state) for mv in ws.models.list()], [(a.alias, a.version) for a in ws.models.aliases()],
            [r.id for r in ws.runs.list(limit=1000)], [e.id for e in ws.events(limit=10_000)],
            ws.store.get_state("loop:inc"))


def test_the_live_loop_continues_the_champion_and_models_show_says_from_which(tmp_path: Path) -> None:
    data = _elec2(2000)
    root = _project(tmp_path / "p", data.iloc[:800])
    clock = SimulatedClock()
    with Workspace.open(root, clock=clock) as ws:  # the loop in-process: its clock is the predictions' one
        ws.run()
        _serve(ws, data.iloc[800:1400], clock)
        assert ws.loop_once().failed is None
    cli = _cli(root)
    shown = json.loads(cli("models", "show", "inc:2", "--json", check=True).stdout)
    assert shown["lineage"]["continued_from"] == {"name": "inc", "version": 1}, shown["lineage"]
    assert shown["state"] == "deployed" or "champion" in shown.get("aliases", []), shown
    assert "continued from inc:1" in cli("models", "show", "inc:2", check=True).stdout.replace("\n", " ")
    with Workspace.open(root, clock=clock) as ws:
        mv = ws.models.get("inc:2")
        assert ws.store.get_snapshot(mv.lineage.snapshot).rows == 600  # exactly the rows labelled since v1
        assert _prepare_bytes(ws, 2) == _prepare_bytes(ws, 1)
        _serve(ws, data.iloc[1400:2000], clock)
        assert ws.loop_once().failed is None
        mv = ws.models.get("inc:3")
        assert mv.lineage.continued_from == {"name": "inc", "version": 2}
        assert ws.store.get_snapshot(mv.lineage.snapshot).rows == 600  # not the 600 v2 learned again


def test_an_estimator_without_partial_fit_is_refused_before_the_loop_runs(tmp_path: Path) -> None:
    hgb = "sklearn.ensemble.HistGradientBoostingClassifier"
    root = _project(tmp_path / "p", _elec2(1400), mode="refit", estimator=hgb, params="{max_iter: 10}")
    clock = SimulatedClock()
    with Workspace.open(root, clock=clock) as ws:
        ws.run()
        _serve(ws, _elec2(1400).iloc[800:1400], clock)
        before = _stored(ws)
    _set_mode(root, "incremental")
    for args in (("loop", "--once"), ("backtest", "--json")):
        line = fails(_cli(root)(*args), f"{hgb} has none", "retrain.mode: refit", "SGDClassifier")
        assert line.startswith("error: retrain.mode: incremental needs an estimator that learns new rows"), line
    with Workspace.open(root, clock=clock) as ws:
        assert _stored(ws) == before


def test_a_champion_not_made_by_fit_pipeline_is_refused(tmp_path: Path) -> None:
    data = _elec2(1400)
    root = _project(tmp_path / "p", data.iloc[:800])
    clock = SimulatedClock()
    with Workspace.open(root, clock=clock) as ws:
        ws.run()
        _serve(ws, data.iloc[800:1400], clock)
        first = ws.models.get("inc:1")
        bare = ws.models.load("inc:1").named_steps["model"]  # the estimator alone: no prepare step
        digest = ws.artifacts.put(get_flavor("sklearn").save(bare))
        mv = ws.registry.register(dataclasses.replace(first, version=0, artifact_digest=digest), reason="by hand")
        ws.registry.set_alias("inc", CHAMPION, mv.version, reason="a model made outside fit_pipeline")
        before = _stored(ws)
    line = fails(_cli(root)("loop", "--once"), "inc:2 cannot be continued: it is a SGDClassifier, not a pipeline "
                 "made by tidal's fit_pipeline", "retrain.mode: refit")
    assert "Traceback" not in line
    with Workspace.open(root, clock=clock) as ws:
        assert _stored(ws) == before


def test_a_new_class_in_the_new_rows_fails_the_retrain_naming_it_and_nothing_is_registered(tmp_path: Path) -> None:
    """partial_fit cannot add a class: the retrain is refused before its run starts. Inside the loop a refusal
    is a failed retrain (issue #11 point 2: recorded, shown, exit 6 from `tidal loop --once`), never a version."""
    data = _elec2(1400)
    root = _project(tmp_path / "p", data.iloc[:800])
    clock = SimulatedClock()
    with Workspace.open(root, clock=clock) as ws:
        ws.run()
        labels = list(data["up"].iloc[800:1400])
        labels[100] = 2
        _serve(ws, data.iloc[800:1400], clock, labels=labels)
        versions, aliases, runs, _, _ = _stored(ws)
    proc = _cli(root)("loop", "--once")
    assert proc.returncode == exits.RETRAINS_FAILED, (proc.stdout, proc.stderr)
    out = proc.stdout.replace("\n", " ")
    assert "the new rows hold the class 2 that inc:1 was not trained on (0, 1)" in out, out
    assert "retrain.mode: refit" in out and "Traceback" not in out + proc.stderr
    with Workspace.open(root, clock=clock) as ws:
        after = _stored(ws)
        # no version, no alias moved, no run started; the champion's one move is the tick's first monitoring
        # report on its live traffic (deployed -> monitored), not the retrain's doing
        assert after[1:3] == (aliases, runs)
        assert after[0] == [(v, ModelState.MONITORED if s is ModelState.DEPLOYED else s) for v, s in versions]
        (event,) = ws.events(kind="loop.retrain_failed")
        assert "class 2" in event.data["error"] and "retrain.mode: refit" in event.data["error"]
