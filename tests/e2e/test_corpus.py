"""Issue #11, point 3: every project of the corpus (examples/corpus/) runs through the real CLI in CI.

The data sets ship inside installed packages (the ``corpus`` extra, installed by ``make test``);
``examples/corpus/export.py`` writes each project's data.parquet, offline. Each test takes a short copy of
one project — its first rows, a smaller model, a replay of a few hundred rows, and a ``new_data`` trigger
so that the loop retrains at least once whatever the drift — and runs ``tidal run`` then ``tidal
backtest --json`` as a user would. The corpus's own tidal.yaml files are never edited: ``make corpus``
runs them whole.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, _cli

CORPUS = REPO / "examples" / "corpus"
NAMES = sorted(p.parent.name for p in CORPUS.glob("*/tidal.yaml"))
HEAD_ROWS = 600       # the first rows of each data set (they are in time order)
REPLAY_ROWS = 160     # backtest.max_rows of the short copy
RETRAIN_EVERY = 60    # labelled rows between the forced retrains (so two of them)
TICK_ROWS = 40        # the controller looks every 40 rows (the default, 250, would see one tick)

@dataclass
class Outcome:
    """What one corpus project's short copy gave: its spec, and the two CLI calls."""

    project: Path
    spec: dict[str, Any]
    run: subprocess.CompletedProcess[str]
    backtest: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every project's short copy through ``tidal run`` then ``tidal backtest --json``.

    The exporter writes (or finds unchanged) every data file first, offline. Two projects go at a time,
    one per core: each CLI call is a separate process, mostly single-threaded, and this keeps the file's
    time near half of running them one after the other; each test below then judges its own project."""
    proc = subprocess.run([sys.executable, str(CORPUS / "export.py")], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    root = tmp_path_factory.mktemp("corpus")

    def one(name: str) -> tuple[str, Outcome]:
        project = root / name
        spec = _short_copy(name, project)
        cli = _cli(project)
        return name, Outcome(project, spec, cli("run", "--json"), cli("backtest", "--json"))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, NAMES))


def _spec(name: str) -> dict[str, Any]:
    """The project's tidal.yaml as a dict. PyYAML reads YAML 1.1, where the key ``on`` is True; tidal reads
    YAML 1.2, where it is text: give it its name back (safe_dump then quotes it)."""
    spec: dict[str, Any] = yaml.safe_load((CORPUS / name / "tidal.yaml").read_text())
    retrain = spec.get("retrain") or {}
    if True in retrain:
        retrain["on"] = retrain.pop(True)
    return spec


def _short_copy(name: str, dest: Path) -> dict[str, Any]:
    """A copy of corpus project ``name`` cut for a test run; returns the copy's spec."""
    spec = _spec(name)
    spec["model"]["params"] = {**spec["model"].get("params", {}), "max_iter": 20}
    spec["backtest"].update(max_rows=REPLAY_ROWS, tick_rows=TICK_ROWS)
    retrain = spec["retrain"]
    retrain["on"]["new_data"] = {"rows": RETRAIN_EVERY}
    retrain["cooldown"] = {"rows": RETRAIN_EVERY}
    retrain["min_labelled"] = min(retrain.get("min_labelled", 500), RETRAIN_EVERY // 2)
    dest.mkdir()
    (dest / "tidal.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    pd.read_parquet(CORPUS / name / "data.parquet").head(HEAD_ROWS).to_parquet(dest / "data.parquet", index=False)
    return spec


def test_the_corpus_covers_what_the_issue_asks() -> None:
    assert len(NAMES) >= 10, NAMES
    for name in NAMES:  # each project reads its own file, which the exporter writes
        spec = _spec(name)
        assert spec["data"]["source"] == "data.parquet", name
    assert (REPO / "bench" / "corpus.py").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_corpus_project_runs_and_backtests(name: str, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[name]
    spec, project = outcome.spec, outcome.project
    assert outcome.run.returncode == 0, f"{outcome.run.stdout}\n{outcome.run.stderr}"
    run = json.loads(outcome.run.stdout)
    assert run["status"] == "succeeded" and run["model"]["state"] == "deployed", run

    proc = outcome.backtest
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    result = json.loads(proc.stdout)
    rows = len(pd.read_parquet(project / "data.parquet"))
    assert result["rows"] == min(REPLAY_ROWS, rows - result["initial_rows"])
    regression = spec["model"]["estimator"].endswith("Regressor")
    assert result["metric"] == ("rmse" if regression else "accuracy")
    for strategy in ("loop", "static", "periodic", "last_label"):
        score = result[strategy]["score"]
        assert math.isfinite(score) and (score >= 0 if regression else 0 <= score <= 1), (strategy, score)
    loop = result["loop"]
    # the forced trigger fires: the loop retrains, and every retrain ends in a promotion or a rejection
    # (with the direct strategy anything else is a failed retrain)
    assert loop["retrains"] >= 1, loop
    assert loop["failures"] == 0, loop
    assert loop["promotions"] + loop["rejections"] == loop["retrains"], loop
