"""``tidal run`` (a real subprocess) on a SQLite table with ``data.incremental``: the second run says that no
row is new, and a run after an insert collects only the new ones."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sklearn.datasets import load_iris

from tidal import Workspace

SPEC = """\
version: 1
name: iris
data:
  source: sqlite:///flowers.db
  query: SELECT * FROM flowers
  target: species
  id: id
  incremental: {column: id}
  window: {last_rows: 120}
model:
  estimator: sklearn.linear_model.LogisticRegression
  params: {max_iter: 500}
validate:
  split: {method: random, test_size: 0.3}
"""


def test_tidal_run_collects_only_new_rows_and_says_when_there_are_none(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    iris = load_iris(as_frame=True).frame.sample(frac=1.0, random_state=0)  # the classes mixed, in a fixed order
    rows = [(i, *map(float, r[:4]), int(r[4])) for i, r in enumerate(iris.itertuples(index=False))]
    (tmp_path / "tidal.yaml").write_text(SPEC)
    with sqlite3.connect(tmp_path / "flowers.db") as conn:
        conn.execute("CREATE TABLE flowers (id INTEGER, sl REAL, sw REAL, pl REAL, pw REAL, species INTEGER)")
        conn.executemany("INSERT INTO flowers VALUES (?, ?, ?, ?, ?, ?)", rows[:100])
    conn.close()

    with Workspace.open(tmp_path) as ws:
        assert ws.run().notes == ["collected 100 new rows since the start (watermark 99)"]

    idle = cli("run", check=True)  # the same table trains again: every step after collect is reused
    assert "note no new rows since 99" in idle.stdout and "iris:1" in idle.stdout

    with sqlite3.connect(tmp_path / "flowers.db") as conn:
        conn.executemany("INSERT INTO flowers VALUES (?, ?, ?, ?, ?, ?)", rows[100:])
    conn.close()
    with Workspace.open(tmp_path) as ws:
        grown = ws.run()
        assert grown.notes == ["collected 50 new rows since 99 (watermark 149)"]
        collect = grown.steps[0].outputs
        assert (collect["new_rows"], collect["rows"], collect["batches"]) == (50, 120, 2)
        kinds = [e.kind for e in ws.events() if e.kind in ("data.collected", "data.no_new_rows")]
        assert kinds == ["data.collected", "data.no_new_rows", "data.collected"]
