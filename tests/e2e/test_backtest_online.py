"""The backtest's ``online`` baseline: a river learner replayed on the rows the loop saw, learning each label
as it arrives. Checked against a replay written here independently (river used directly, as a user would),
through the real CLI; a learner that is not a river learner for the task is refused in one line."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ELEC2
from tidal.core.charts import read_specs

pytest.importorskip("river", reason="the online extra (river) is installed by make test")

ONLINE = "  online: {model: river.linear_model.LogisticRegression, scale: true}\n"


def _with_backtest(project: Path, extra: str) -> None:
    spec = (project / "tidal.yaml").read_text()
    assert spec.rstrip().splitlines()[-1].startswith("  "), "the example's last section is backtest:"
    (project / "tidal.yaml").write_text(spec + extra)


def _river_replay(rows: int, initial: int, delay: int) -> float:
    """Prequential accuracy of river's scaled logistic regression on Elec2's first ``rows`` rows."""
    import csv

    from river import linear_model, preprocessing

    lines = gzip.decompress((ELEC2 / "data" / "elec2.csv.gz").read_bytes()).decode().splitlines()[:rows + 1]
    data = list(csv.DictReader(lines))
    xs = [{k: float(v) for k, v in r.items() if k != "up"} for r in data]
    ys = [int(r["up"]) for r in data]
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for i in range(initial):
        model.learn_one(xs[i], ys[i])
    hits, learned = 0, initial
    for i in range(initial, rows):
        hits += model.predict_one(xs[i]) == ys[i]
        while learned <= i - delay:
            model.learn_one(xs[learned], ys[learned])
            learned += 1
    return hits / (rows - initial)


@pytest.mark.parametrize("delay", [0, 24])
def test_the_online_baseline_is_the_river_replay_beside_the_loop(
        small_project: Path, cli: Callable[..., Any], tmp_path: Path, delay: int) -> None:
    spec = (small_project / "tidal.yaml").read_text().replace("label_delay: 0 ", f"label_delay: {delay} ")
    (small_project / "tidal.yaml").write_text(spec)
    _with_backtest(small_project, ONLINE)
    page = tmp_path / "backtest.html"
    out = cli("-C", str(small_project), "backtest", "--json", "--html", str(page), check=True)
    result = json.loads(out.stdout)
    online = result["online"]
    assert online["model"] == "river.linear_model.LogisticRegression"
    assert online["seconds"] >= 0
    expected = _river_replay(3000, result["initial_rows"], delay)
    assert online["score"] == pytest.approx(expected, abs=1e-12), (online, expected)
    # a real baseline on Elec2: far above chance, and the loop's scores are untouched beside it
    assert 0.6 < online["score"] < 1 and {"loop", "static", "periodic", "last_label"} <= result.keys()
    html = page.read_text()
    scores = next(s for s in read_specs(html).values() if s["name"] == "scores")
    assert "river.linear_model.LogisticRegression" in html and "online" in [s["label"] for s in scores["series"]]


def test_the_table_shows_the_online_row(small_project: Path, cli: Callable[..., Any]) -> None:
    _with_backtest(small_project, ONLINE + "  max_rows: 300\n")
    out = cli("-C", str(small_project), "backtest", check=True)
    row = next(line for line in out.stdout.splitlines() if "online" in line and "LogisticRegression" in line)
    assert "learning each label as it arrives" in row


@pytest.mark.parametrize(("model", "needle"), [
    ("os.system", "is not a river class"),
    ("river.linear_model.LinearRegression", "is not a river classifier"),
    ("river.no_such.Model", "does not exist in river"),
])
def test_an_online_model_that_is_not_a_river_learner_for_the_task_is_refused(
        small_project: Path, cli: Callable[..., Any], model: str, needle: str) -> None:
    _with_backtest(small_project, f"  online: {{model: {model}}}\n  max_rows: 300\n")
    out = cli("-C", str(small_project), "backtest")
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert needle in out.stderr and "backtest.online.model" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
