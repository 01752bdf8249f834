"""The executor port (issue #16, point 1): a step goes to the executor as a module-level function with its
inputs as arguments, never a closure over the stores, so that it can run in another process.

:class:`SendingExecutor` sends every call through the standard library's ``pickle`` (which sends a function by
its name only, and refuses a lambda, a closure or a store) and runs the copy, as another process would. A
whole ``tidal run`` with a search, then a backtest, run through it and give the same model as the local
executor; the functions it was given are the stage functions, none a closure. Real data (scikit-learn's
breast cancer), a real estimator, few trials.
"""

from __future__ import annotations

import pickle
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest

from tidal import Workspace
from tidal.core.errors import ExecutorError, PluginNotFound
from tidal.core.ports import Executor, Task
from tidal.executors import open_executor
from tidal.executors.local import LocalExecutor, LocalTask
from tidal.executors.ray import RayExecutor, check_sendable

R = TypeVar("R")


class SendingExecutor(LocalExecutor):
    """The local executor, but every call is pickled and run from the copy (and named in ``sent``)."""

    name = "sending"

    def __init__(self) -> None:
        self.sent: list[str] = []

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> LocalTask[R]:
        check_sendable(fn)
        self.sent.append(f"{fn.__module__}.{fn.__qualname__}")
        copy_fn, copy_args, copy_kwargs = pickle.loads(pickle.dumps((fn, args, kwargs)))
        return LocalTask(copy_fn, copy_args, copy_kwargs)

    def run(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        return self.submit(fn, *args, **kwargs).result()


def _project(root: Path, *, search: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame = frame[["mean radius", "mean texture", "worst area", "worst smoothness", "target"]]
    frame.insert(0, "t", np.arange(len(frame)))
    frame["size"] = pd.cut(frame["mean radius"], 3, labels=["s", "m", "l"]).astype(str)  # a category column
    frame.to_csv(root / "rows.csv", index=False)
    searched = """  search:
    params: {max_depth: {int: [2, 4]}, learning_rate: {float: [0.05, 0.3], log: true}}
    trials: 3
"""
    (root / "tidal.yaml").write_text(f"""version: 1
name: port
data: {{source: rows.csv, target: target, time: t}}
model:
  estimator: sklearn.ensemble.HistGradientBoostingClassifier
  params: {{max_iter: 10}}
  seed: 0
{searched if search else ""}validate: {{gates: [accuracy >= 0.8]}}
backtest: {{initial_rows: 0.4, tick_rows: 100, periodic_every: 150}}
""")
    return root


def _model_digest(ws: Workspace) -> str:
    champion = ws.registry.champion("port")
    assert champion is not None
    return champion.artifact_digest


@pytest.mark.slow
def test_a_run_with_a_search_and_a_backtest_send_only_module_level_steps(tmp_path: Path) -> None:
    local = Workspace.open(_project(tmp_path / "local"))
    local.run()
    sent = Workspace.open(_project(tmp_path / "sent"))
    executor = SendingExecutor()
    sent.executor = executor
    result = sent.run()

    assert _model_digest(sent) == _model_digest(local)  # the same model, bit for bit
    assert "tidal.loop.search.fit_trial" in executor.sent and executor.sent.count("tidal.loop.search.fit_trial") == 3
    for step in ("tidal.loop.registration.fit_stored", "tidal.loop.pipeline._evaluate_step",
                 "tidal.loop.pipeline._split_step", "tidal.loop.registration._gate_step", "tidal.data.steps.validate",
                 "tidal.data.steps.profile"):
        assert step in executor.sent, step
    assert not [s for s in executor.sent if "<locals>" in s or "<lambda>" in s]
    by_name = {s.name: s for s in result.steps}
    assert "ran_on" not in by_name["train"].outputs  # the local executors ran it in this process

    executor.sent.clear()
    backtest = sent.backtest()
    assert "tidal.loop.backtest._periodic" in executor.sent and backtest.periodic["retrains"] >= 1
    again = local.backtest()
    assert backtest.to_dict() == again.to_dict()
    # the periodic strategy's own seconds, as its task measured them: a timing, kept out of to_dict
    assert backtest.periodic_seconds is not None and again.periodic_seconds is not None
    assert again.periodic_seconds > 0 and "periodic_seconds" not in str(again.to_dict())
    local.close()
    sent.close()


def test_the_local_executor_runs_a_task_when_its_result_is_asked_for() -> None:
    calls: list[int] = []

    def note(i: int) -> int:
        calls.append(i)
        if i == 3:
            raise ValueError("three")
        return i * 10

    ex: Executor = LocalExecutor()
    tasks: Sequence[Task[int]] = [ex.submit(note, i) for i in (1, 2, 3)]
    assert calls == [] and ex.slots == 1
    assert [t.result() for t in ex.wait(tasks)] == [10] and calls == [1]
    assert tasks[1].result() == 20 and tasks[1].result() == 20 and calls == [1, 2]  # run once
    with pytest.raises(ValueError, match="three"):
        tasks[2].result()
    with pytest.raises(ValueError, match="three"):  # kept: the same error again, not a second call
        tasks[2].result()
    assert calls == [1, 2, 3] and tasks[2].where is None


def test_executor_names_open_nothing_until_a_step_runs() -> None:
    assert isinstance(open_executor("local"), LocalExecutor) and isinstance(open_executor(""), LocalExecutor)
    ray_local, ray_cluster = open_executor("ray"), open_executor("ray://10.0.0.1:10001")
    assert isinstance(ray_local, RayExecutor) and ray_local.address is None
    assert isinstance(ray_cluster, RayExecutor) and ray_cluster.address == "ray://10.0.0.1:10001"
    ray_cluster.close()  # never connected: nothing to shut down
    with pytest.raises(PluginNotFound, match="unknown executor 'spark'") as err:
        open_executor("spark://host:7077")
    assert "local" in str(err.value.hint) and "ray" in str(err.value.hint)


def test_a_closure_or_a_lambda_is_refused_before_anything_is_sent() -> None:
    def inner() -> None:
        return None

    with pytest.raises(TypeError, match="not a module-level function"):
        check_sendable(inner)
    with pytest.raises(TypeError, match="not a module-level function"):
        RayExecutor("ray://127.0.0.1:1").submit(lambda: None)
    check_sendable(_project)  # a module-level function passes


def test_a_ray_address_that_accepts_no_connection_is_one_line_at_once() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pytest.importorskip("ray")
    ex = RayExecutor(f"ray://127.0.0.1:{port}")
    with pytest.raises(ExecutorError) as err:
        ex.run(_project, Path("unused"))
    assert str(err.value).startswith(f"cannot reach the Ray cluster at ray://127.0.0.1:{port}: ")
    assert "\n" not in str(err.value) and "ray start --head" in str(err.value.hint)
    with pytest.raises(ExecutorError, match="is not a Ray address"):
        RayExecutor("ray://").run(_project, Path("unused"))


def test_opening_a_ray_executor_imports_no_ray() -> None:
    import subprocess
    import sys

    code = ("import sys, tidal.workspace; from tidal.executors import open_executor; open_executor('ray'); "
            "open_executor('ray://h:1'); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
