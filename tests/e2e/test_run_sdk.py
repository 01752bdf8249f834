"""End to end through the SDK on the real Elec2 data: run, reuse, retrain on a changed param, lineage."""

from __future__ import annotations

import shutil
from pathlib import Path

from tidal import Workspace
from tidal.core.entities import ModelState

STEPS = ["collect", "validate", "split", "profile", "train", "evaluate", "gate", "register"]


def _set_param(project: Path, old: str, new: str) -> None:
    spec = project / "tidal.yaml"
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new))


def test_first_run_registers_a_validated_champion_with_lineage(elec2_project: Path) -> None:
    with Workspace.open(elec2_project) as ws:
        result = ws.run()
        assert [s.name for s in result.steps] == STEPS
        assert all(s.status.value == "done" for s in result.steps), [(s.name, s.explain) for s in result.steps]
        mv = result.model
        assert mv is not None and mv.state == ModelState.DEPLOYED  # validated by its gate, then made champion
        assert ws.models.get("elec2:champion").version == mv.version == 1
        assert mv.metrics["accuracy"] > 0.70 and mv.metrics["roc_auc"] > 0.75
        assert set(mv.signature.columns) == {"period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"}
        lineage = mv.lineage
        assert lineage.run_id == result.run.id
        assert len(lineage.snapshot) == 64 and lineage.snapshot == ws.store.list_snapshots()[0].digest
        assert lineage.spec_digest == ws.spec.digest
        assert len(lineage.environment_digest) == 64
        assert "nswprice" in mv.profile["features"]["columns"]  # the reference profile travels with the version
        # the holdout is the last 20 % in time order, and the model was trained on the rest only
        split = next(s for s in result.steps if s.name == "split").outputs
        assert (split["rows_train"], split["rows_holdout"]) == (36_250, 9_062)
        # tracking: validation metrics and per-iteration curves with their steps
        metrics = ws.store.get_metrics(result.run.id)
        curve = [m for m in metrics if m.key == "curve.validation_score"]
        assert len(curve) > 5 and [m.step for m in curve] == list(range(len(curve)))
        assert any(m.key == "validation.accuracy" for m in metrics)
        kinds = [e.kind for e in ws.events()]
        assert "gate.passed" in kinds and "alias.moved" in kinds
        # the loaded champion predicts like the evaluated one
        model = ws.models.load("elec2:champion")
        assert hasattr(model, "predict_proba")


def test_second_run_reuses_every_step_and_a_changed_param_retrains(elec2_project: Path) -> None:
    with Workspace.open(elec2_project) as ws:
        first = ws.run()
    with Workspace.open(elec2_project) as ws:
        second = ws.run()
        assert [s.status.value for s in second.steps] == ["reused"] * len(STEPS), \
            [(s.name, s.explain) for s in second.steps]
        assert all(s.explain.startswith("reused") for s in second.steps)
        assert second.model is not None and second.model.version == first.model.version
        assert len(ws.models.list()) == 1
    _set_param(elec2_project, "max_iter: 200", "max_iter: 50")
    with Workspace.open(elec2_project) as ws:
        third = ws.run()
        status = {s.name: s.status.value for s in third.steps}
        assert status == {"collect": "reused", "validate": "reused", "split": "reused", "profile": "reused",
                          "train": "done", "evaluate": "done", "gate": "done", "register": "done"}
        train = next(s for s in third.steps if s.name == "train")
        assert "model.params.max_iter" in train.explain or "params.max_iter" in train.explain
        assert "200" in train.explain and "50" in train.explain
        assert third.model is not None and third.model.version == 2
        # the gate compared it with the champion on the same holdout rows
        assert third.decision is not None and third.decision.champion is not None
        assert third.decision.champion["label"] == "elec2:1"


def test_two_fresh_workspaces_give_the_same_model_and_metrics(tmp_path: Path, elec2_project: Path) -> None:
    other = tmp_path / "again"
    shutil.copytree(elec2_project, other)
    with Workspace.open(elec2_project) as a, Workspace.open(other) as b:
        ra, rb = a.run(), b.run()
        assert ra.model is not None and rb.model is not None
        assert ra.model.artifact_digest == rb.model.artifact_digest
        assert ra.model.lineage.snapshot == rb.model.lineage.snapshot
        assert ra.metrics == rb.metrics
