"""Served = validated (issue #12, point 2): a version is registered validated only once its stored artifact,
loaded back as the server loads it, predicts the holdout exactly as the trained model did. A flavor whose
stored form answers a little differently (here: the scikit-learn flavor's load nudged by 1e-6) gets its
version rejected, with an event saying why, and it never becomes champion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tidal import Workspace
from tidal.core.entities import ModelState
from tidal.core.errors import AliasConflict
from tidal.train.flavors.sklearn import SklearnFlavor


def _drifting_load(monkeypatch: pytest.MonkeyPatch) -> None:
    real = SklearnFlavor.load

    def load(self: SklearnFlavor, data: bytes) -> Any:
        model = real(self, data)
        estimator = model.named_steps["model"]
        estimator._baseline_prediction = estimator._baseline_prediction + 1e-6  # subtly not what was trained
        return model

    monkeypatch.setattr(SklearnFlavor, "load", load)


def test_a_stored_model_that_predicts_differently_is_rejected_and_never_champion(
        small_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Workspace.open(small_project) as ws:
        first = ws.run()
        assert first.model is not None and first.model.state is ModelState.DEPLOYED  # validated, then champion
        assert first.champion == first.model.version == 1
    spec = (small_project / "tidal.yaml").read_text()
    (small_project / "tidal.yaml").write_text(spec.replace("max_iter: 30", "max_iter: 31"))
    _drifting_load(monkeypatch)
    with Workspace.open(small_project) as ws:
        second = ws.run()
        mv = second.model
        assert mv is not None and mv.version == 2 and mv.state is ModelState.REJECTED
        assert len(mv.reasons) == 1 and mv.reasons[0].startswith("served = validated: the stored model predicts")
        assert "probabilities up to" in mv.reasons[0]
        assert second.decision is not None and not second.decision.passed
        assert second.champion == 1 and ws.registry.champion("elec2").version == 1  # type: ignore[union-attr]
        failed = [e for e in ws.events() if e.kind == "gate.failed" and e.subject == "model:elec2:2"]
        assert len(failed) == 1 and "served = validated" in failed[0].message
        gate = next(s for s in second.steps if s.name == "gate")
        assert gate.outputs["passed"] is False and "served = validated" in (gate.explain or "")
        with pytest.raises(AliasConflict, match="rejected"):
            ws.registry.set_alias("elec2", "champion", 2, reason="try to promote it anyway")
