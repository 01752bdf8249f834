"""What a library prints while tidal fits it goes to the run's log, not the terminal (issue #12, point 4b):
LightGBM's native messages, XGBoost's warnings, Python output and raw writes to file descriptors 1 and 2,
with the terminal's streams and descriptors restored afterwards, also when the fit raises, and another
thread's output left where it goes."""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from tidal.spec.model import ModelSpec, PrepareSpec
from tidal.train.capture import capture_output
from tidal.train.fit import fit_pipeline


def _tiny() -> pd.DataFrame:
    """Forty rows of the diabetes data: LightGBM, at its default verbosity (1, given here: the level is
    LightGBM's process-wide state, which an earlier ``verbose: -1`` in the same process would have lowered),
    says it found nothing to split."""
    return load_diabetes(as_frame=True).frame.head(40)


def test_lightgbm_chatter_of_tidals_fit_goes_to_the_log_not_the_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    frame = _tiny()
    columns = [c for c in frame.columns if c != "target"]
    fitted = fit_pipeline(frame, target="target", columns=columns, kinds=dict.fromkeys(columns, "numeric"),
                          prepare=PrepareSpec(), model=ModelSpec(estimator="lightgbm.LGBMRegressor",
                                                                 params={"n_estimators": 5, "verbose": 1}))
    out, err = capfd.readouterr()
    assert "LightGBM" not in out + err, out + err
    assert "[LightGBM] [Warning] No further splits with positive gain" in fitted.log, fitted.log
    assert "[LightGBM] [Info] Number of data points in the train set: 40" in fitted.log
    # verbose: -1 is LightGBM's own parameter: passed through unchanged, it silences the library
    quiet = fit_pipeline(frame, target="target", columns=columns, kinds=dict.fromkeys(columns, "numeric"),
                         prepare=PrepareSpec(), model=ModelSpec(estimator="lightgbm.LGBMRegressor",
                                                                params={"n_estimators": 5, "verbose": -1}))
    assert "[LightGBM]" not in quiet.log and quiet.model.named_steps["model"].get_params()["verbose"] == -1


def test_xgboost_warnings_and_info_go_to_the_log(capfd: pytest.CaptureFixture[str]) -> None:
    frame = _tiny()
    columns = [c for c in frame.columns if c != "target"]
    fitted = fit_pipeline(frame, target="target", columns=columns, kinds=dict.fromkeys(columns, "numeric"),
                          prepare=PrepareSpec(), model=ModelSpec(
                              estimator="xgboost.XGBRegressor",
                              params={"n_estimators": 3, "verbosity": 2, "tree_method": "hist", "max_bin": 16,
                                      "not_a_parameter": 1}))
    out, err = capfd.readouterr()
    assert "XGBoost" not in out + err and "not_a_parameter" not in out + err, out + err
    assert "not_a_parameter" in fitted.log, fitted.log  # XGBoost's own warning about a parameter it ignores
    assert any("not_a_parameter" in w for w in fitted.warnings)
    assert "INFO:" in fitted.log  # verbosity 2: XGBoost's native info lines


def test_native_and_python_output_is_captured_in_order_and_restored_on_error(
        capfd: pytest.CaptureFixture[str]) -> None:
    stdout, stderr = sys.stdout, sys.stderr
    with pytest.raises(RuntimeError), capture_output() as caught:
        print("python line")
        os.write(1, b"native stdout\n")
        os.write(2, b"native stderr\n")
        warnings.warn("a library warning", UserWarning, stacklevel=1)
        logging.getLogger("lightgbm").warning("a logged warning")
        raise RuntimeError("the fit failed")
    assert caught.lines == ["python line", "native stdout", "native stderr", "UserWarning: a library warning",
                            "WARNING:lightgbm:a logged warning"]
    assert caught.warnings == ["UserWarning: a library warning"]
    assert sys.stdout is stdout and sys.stderr is stderr
    os.write(1, b"after\n")
    print("after, python")
    out, err = capfd.readouterr()
    assert out == "after\nafter, python\n" and err == "", (out, err)


def test_a_capture_in_another_thread_leaves_the_main_threads_output_alone(capfd: pytest.CaptureFixture[str]) -> None:
    import lightgbm as lgb

    started, printed = threading.Event(), threading.Event()
    result: dict[str, list[str]] = {}
    X = np.random.RandomState(0).rand(40, 3)

    def fit() -> None:
        with capture_output() as caught:
            print("from the worker")
            started.set()
            printed.wait(10)
            lgb.LGBMRegressor(n_estimators=3, verbose=1).fit(X, X[:, 0])  # LightGBM keeps its log callback per thread
        result["lines"] = caught.lines

    worker = threading.Thread(target=fit)
    worker.start()
    started.wait(10)
    print("from the main thread")
    printed.set()
    worker.join(30)
    out, err = capfd.readouterr()
    assert out == "from the main thread\n" and "LightGBM" not in err, (out, err)
    assert result["lines"][0] == "from the worker"
    assert any(line.startswith("[LightGBM] [Info]") for line in result["lines"]), result["lines"]


def test_a_spinner_running_during_the_fit_stays_on_the_terminal(capfd: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from rich.console import Console

    # sys.stdout on descriptor 1, as in a terminal (pytest's own writes elsewhere)
    monkeypatch.setattr(sys, "stdout", open(1, "w", closefd=False, buffering=1))  # noqa: SIM115
    console = Console(force_terminal=True, width=80)  # as `tidal run` shows a running step
    with console.status("train running…", refresh_per_second=50), capture_output() as caught:
        print("from the library")
        time.sleep(0.3)  # the spinner's thread redraws meanwhile
    out, _ = capfd.readouterr()
    assert caught.lines == ["from the library"], caught.lines
    assert "train running" in out and "from the library" not in out
