"""Hyper-parameter search (issue #16, point 3): `model.search` runs Optuna trials as child runs of the run,
on the validation rows carved out of the training rows (never the gate's holdout); the best trial's params
train the model that is gated and registered, whose lineage names the study; the study is kept beside the
metadata store (SQLite file, PostgreSQL schema), so an interrupted search resumes where it stopped. Real
data (scikit-learn's breast cancer), a real estimator, few trials."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from sklearn.datasets import load_breast_cancer

from tidal import Workspace
from tidal.core.entities import RunStatus
from tidal.core.errors import SpecError, TidalError
from tidal.core.progress import listening
from tidal.storage.study import open_study_storage, study_url

SPACE = "{max_iter: {int: [5, 20]}, learning_rate: {float: [0.02, 0.4], log: true}, max_depth: {choice: [2, 3, 4]}}"


def _project(root: Path, *, trials: int = 4, extra: str = "", space: str = SPACE, params: str = "{max_iter: 10}",
             estimator: str = "sklearn.ensemble.HistGradientBoostingClassifier") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = root / "rows.csv"
    if not rows.exists():
        load_breast_cancer(as_frame=True).frame.sample(frac=1.0, random_state=0).to_csv(rows, index=False)
    (root / "tidal.yaml").write_text(f"""version: 1
name: cancer
data: {{source: rows.csv, target: target}}
model:
  estimator: {estimator}
  params: {params}
  search:
    params: {space}
    trials: {trials}
{extra}validate: {{split: {{method: random}}, gates: [accuracy >= 0.8]}}
""")
    return root


def _trials(ws: Workspace) -> list[Any]:
    return sorted((r for r in ws.store.list_runs("cancer", limit=500) if r.trigger == "search"),
                  key=lambda r: r.info["trial"])


def test_trials_are_child_runs_and_the_best_one_is_gated_and_registered(tmp_path: Path) -> None:
    ws = Workspace.open(_project(tmp_path / "p", trials=3))
    result = ws.run()
    steps = [s.name for s in result.steps]
    assert steps == ["collect", "validate", "split", "profile", "search", "train", "evaluate", "gate", "register"]
    search = next(s for s in result.steps if s.name == "search").outputs
    assert search["trials"] == search["new_trials"] == 3 and search["metric"] == "accuracy"

    trials = _trials(ws)
    assert [t.info["trial"] for t in trials] == [0, 1, 2]
    for t in trials:  # stored like a run's: params, metrics on the validation rows, the fit time; the parent named
        assert t.status == RunStatus.SUCCEEDED and t.info["parent_run"] == result.run.id
        assert ws.store.get_tags(t.id)["study"] == search["study"]
        params = ws.store.get_params(t.id)
        assert {"model.params.max_iter", "model.params.learning_rate", "model.params.max_depth"} <= set(params)
        keys = {m.key for m in ws.store.get_metrics(t.id)}
        assert {"validation.accuracy", "fit_seconds"} <= keys

    # the best trial is the best value the study stored, and the registered model has exactly its params
    study = optuna.load_study(study_name=search["study"], storage=open_study_storage(ws.settings.store_url))
    values = {t.number: t.value for t in study.trials}
    assert search["best_value"] == max(values.values()) and values[search["best_trial"]] == search["best_value"]
    stored = {t.info["trial"]: t.info["value"] for t in trials}
    assert stored == values
    mv = result.model
    assert mv is not None and mv.state.value in ("validated", "deployed")
    assert mv.lineage.params == {"max_iter": 10, **study.best_params}
    assert mv.lineage.extra["search"]["study"] == search["study"]
    parent = ws.store.get_params(result.run.id)  # the parent run: the spec's params, and those it trained with
    assert parent["search.study"] == search["study"] and parent["model.params.max_iter"] == "10"
    assert {k: parent[f"search.params.{k}"] for k in study.best_params} == {
        k: str(v) for k, v in study.best_params.items()}
    assert mv.info["gate"]["passed"] is True
    assert result.decision is not None and result.decision.passed
    # the search never saw the holdout: the trials scored fewer rows than the training split holds
    split = next(s for s in result.steps if s.name == "split").outputs
    assert split["rows_train"] + split["rows_holdout"] == 569
    assert any(e.kind == "search.done" for e in ws.events(kind="search.done"))

    # the same run again: the study is complete, no new trial, the same model is found again
    again = ws.run()
    out = next(s for s in again.steps if s.name == "search").outputs
    assert out["new_trials"] == 0 and out["best_params"] == search["best_params"]
    assert again.model is not None and again.model.version == mv.version
    assert len(_trials(ws)) == 3


class Interrupt(KeyboardInterrupt):
    """Ctrl-C, pressed after the third trial."""


def test_an_interrupted_search_resumes_without_redoing_its_trials(tmp_path: Path) -> None:
    ws = Workspace.open(_project(tmp_path / "p", trials=6))

    def stop_after_three(what: str, done: int, total: int) -> None:
        if what == "trial" and done == 3:
            raise Interrupt

    with listening(stop_after_three), pytest.raises(Interrupt):
        ws.run()
    first = _trials(ws)
    assert len(first) == 3 and all(t.status == RunStatus.SUCCEEDED for t in first)
    interrupted = next(r for r in ws.store.list_runs("cancer") if r.trigger == "manual")
    assert interrupted.status == RunStatus.FAILED  # an interrupted run is not counted as a success

    seen: list[tuple[int, int]] = []
    result = ws.run() if False else None
    with listening(lambda what, done, total: seen.append((done, total))):
        result = ws.run()
    out = next(s for s in result.steps if s.name == "search").outputs
    assert out["trials"] == 6 and out["new_trials"] == 3
    assert seen == [(4, 6), (5, 6), (6, 6)]
    after = _trials(ws)
    assert [t.info["trial"] for t in after] == [0, 1, 2, 3, 4, 5]
    # the first three are the same runs, untouched; the three new ones drew parameters of their own
    assert [(t.id, t.info["params"]) for t in after[:3]] == [(t.id, t.info["params"]) for t in first]
    assert all(t.info["parent_run"] == result.run.id for t in after[3:])
    assert {str(t.info["params"]) for t in after[3:]}.isdisjoint({str(t.info["params"]) for t in first})
    assert result.model is not None and result.model.lineage.params["max_iter"] == out["best_params"]["max_iter"]


def test_a_time_budget_stops_the_search_and_a_grid_covers_its_points(tmp_path: Path) -> None:
    grid = "{max_depth: {choice: [2, 3]}, max_iter: {int: [5, 7], step: 2}}"
    root = _project(tmp_path / "p", trials=50, space=grid, extra="    sampler: grid\n")
    result = Workspace.open(root).run()
    out = next(s for s in result.steps if s.name == "search").outputs
    assert out["trials"] == 4  # the grid has 4 points: the budget of 50 stops there
    assert sorted(str(sorted(t.info["params"].items())) for t in _trials(Workspace.open(root))) == sorted(
        str(sorted({"max_depth": d, "max_iter": i}.items())) for d in (2, 3) for i in (5, 7))
    assert result.model is not None

    timed = _project(tmp_path / "t", extra="    time: 1s\n")
    (timed / "tidal.yaml").write_text((timed / "tidal.yaml").read_text().replace("    trials: 4\n", ""))
    result = Workspace.open(timed).run()
    out = next(s for s in result.steps if s.name == "search").outputs
    assert out["new_trials"] >= 1  # at least one trial starts; none starts after the budget is spent


def test_pruned_trials_are_recorded_as_pruned_never_as_best(tmp_path: Path) -> None:
    # HistGradientBoosting with early stopping logs its per-iteration validation score (on rows it sets
    # aside from its fit rows): the median pruner reads that curve
    root = _project(tmp_path / "p", trials=6, params="{early_stopping: true, n_iter_no_change: 50}",
                    space="{max_iter: {int: [10, 20]}, learning_rate: {float: [0.0005, 0.5], log: true}}",
                    extra="    sampler: random\n    pruner: median\n")
    ws = Workspace.open(root)
    result = ws.run()
    out = next(s for s in result.steps if s.name == "search").outputs
    trials = _trials(ws)
    pruned = [t for t in trials if t.info["state"] == "pruned"]
    assert out["states"].get("pruned", 0) == len(pruned) >= 1
    for t in pruned:  # scored on no validation rows, never the best; its curve is kept
        keys = {m.key for m in ws.store.get_metrics(t.id)}
        assert "validation.accuracy" not in keys and "curve.validation_score" in keys
        assert t.info["trial"] != out["best_trial"]


@pytest.mark.parametrize(("search", "expected"), [
    ("{params: {}, trials: 3}", "model.search.params: an empty search space; expected at least one parameter"),
    ("{params: {max_iter: {int: [200, 20]}}}", "model.search.params.max_iter.int: low 200 is above high 20"),
    ("{params: {learning_rate: {float: [0, 0.3], log: true}}}", "a log scale needs low > 0, got 0"),
    ("{params: {max_iter: {int: [1, 5]}}, trials: 0}", "model.search.trials: 0 trials; expected at least 1"),
    ("{params: {max_iter: {int: [1, 5]}}, time: 0m}", "model.search.time: a time budget of '0m'"),
    ("{params: {max_iter: {int: [1, 5]}}, time: soon}", "'soon' is not a duration"),
    ("{params: {max_iter: {ints: [1, 5]}}}", "model.search.params.max_iter"),
    ("{params: {max_iter: {int: [1, 5], choice: [1]}}}", "int and choice given"),
    ("{params: {lr: {float: [0.1, 0.2]}}, sampler: grid}", "a grid cannot cover a float range without a step"),
    ("{params: {max_iter: {int: [1, 5]}}, metric: accuracyy}", "unknown metric 'accuracyy'"),
])
def test_a_bad_search_is_one_line_when_the_file_is_read(search: str, expected: str) -> None:
    from tidal.spec import parse_spec

    text = f"name: t\ndata: {{source: d.csv, target: y}}\nmodel: {{estimator: a.B, search: {search}}}\n"
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    message = str(info.value)
    assert "\n" not in message and "pydantic" not in message and "Input should" not in message
    assert expected in message, message


def test_an_unknown_param_or_a_metric_of_the_other_task_is_refused_before_any_trial(tmp_path: Path) -> None:
    ws = Workspace.open(_project(tmp_path / "p", space="{max_iters: {int: [5, 40]}}"))
    with pytest.raises(SpecError, match=r"^model.search.params.max_iters: HistGradientBoostingClassifier has no "
                                        r"parameter 'max_iters' — did you mean 'max_iter'\?$"):
        ws.run()
    assert _trials(ws) == [] and ws.models.list() == [] if hasattr(ws, "models") else True

    ws = Workspace.open(_project(tmp_path / "q", extra="    metric: rmse\n"))
    with pytest.raises(SpecError, match=r"model.search.metric: 'rmse' is a regression metric, but the task is "
                                        r"classification"):
        ws.run()
    assert _trials(ws) == []


def test_every_trial_failing_is_a_failed_run_not_a_model(tmp_path: Path) -> None:
    ws = Workspace.open(_project(tmp_path / "p", trials=2, space="{loss: {choice: [no_such_loss]}}"))
    with pytest.raises(TidalError, match=r"no trial of the search finished \(2 fail\)"):
        ws.run()
    assert [t.status for t in _trials(ws)] == [RunStatus.FAILED, RunStatus.FAILED]
    assert ws.store.list_model_versions("cancer") == []


def test_without_optuna_a_search_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace.open(_project(tmp_path / "p"))
    monkeypatch.setitem(sys.modules, "optuna", None)  # what `import optuna` meets where it is not installed
    with pytest.raises(TidalError, match=r"model.search needs Optuna, which is not installed — "
                                         r"pip install 'tidal\[search\]'"):
        ws.run()


def test_the_study_lives_beside_the_store(tmp_path: Path) -> None:
    url, schema = study_url(f"sqlite:///{tmp_path}/.tidal/tidal.db")
    assert url == f"sqlite:///{tmp_path}/.tidal/tidal.studies.db" and schema is None
    url, schema = study_url("postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dabc")
    assert schema == "abc_studies" and "search_path%3Dabc_studies" in url
    with pytest.raises(TidalError, match="in-memory SQLite"):
        study_url("sqlite://")
