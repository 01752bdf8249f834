"""Hyper-parameter search over time and storage (issue #16, point 3): on PostgreSQL the study lives in a
schema of its own in the store's database and resumes with a larger budget; in the closed loop,
``retrain.tune: every N retrains`` searches again every N-th retrain and refits the champion's params
between. Real data (scikit-learn's breast cancer), few trials."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_breast_cancer

from tests.contract.conftest import POSTGRES_ENV, postgres_schema_url
from tests.e2e.test_search import _project, _trials
from tidal import Workspace
from tidal.storage.study import drop_study_schema, study_url


@pytest.fixture
def postgres_store() -> Iterator[str]:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip("set TIDAL_TEST_POSTGRES_URL to run the PostgreSQL search test")
    import sqlalchemy as sa

    schema = f"tidal_search_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = postgres_schema_url(base, schema)
    try:
        yield url
    finally:
        drop_study_schema(url)
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.postgres
def test_on_postgresql_the_study_is_in_its_own_schema_and_resumes(tmp_path: Path, postgres_store: str) -> None:
    import sqlalchemy as sa

    root = _project(tmp_path / "p", trials=2)
    ws = Workspace.open(root, store_url=postgres_store)
    first = ws.run()
    out = next(s for s in first.steps if s.name == "search").outputs
    assert out["new_trials"] == 2
    _project(root, trials=3)
    ws = Workspace.open(root, store_url=postgres_store)
    result = ws.run()
    out = next(s for s in result.steps if s.name == "search").outputs
    assert out["trials"] == 3 and out["new_trials"] == 1
    assert len(_trials(ws)) == 3
    _, schema = study_url(postgres_store)
    engine = sa.create_engine(postgres_store, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            names = {r[0] for r in conn.execute(sa.text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema})}
    finally:
        engine.dispose()
    assert {"studies", "trials", "alembic_version"} <= names
    assert result.model is not None and result.model.lineage.extra["search"]["study"] == out["study"]



def _serve(ws: Workspace, frame: Any) -> None:
    """Answer ``frame`` with the champion, log the answers and their labels, as the server would."""
    from tidal.core.entities import Feedback, Prediction

    mv = ws.models.get("cancer:champion")
    model = ws.models.load(f"cancer:{mv.version}")
    X = frame.drop(columns=["target"])
    now = ws.clock.now()
    preds = [Prediction(id=uuid.uuid4().hex, time=now, model="cancer", version=mv.version,
                        inputs={k: float(v) for k, v in row.items()}, output=int(p))
             for row, p in zip(X.to_dict(orient="records"), model.predict(X), strict=True)]
    ws.predictions.append(preds)
    ws.predictions.add_feedback([Feedback(prediction_id=p.id, label=int(y), time=now)
                                 for p, y in zip(preds, frame["target"], strict=True)])


def test_retrain_tune_searches_again_every_n_retrains_and_refits_the_champions_params_between(
        tmp_path: Path) -> None:
    from tidal.core.clock import SimulatedClock
    from tidal.loop.controller import Controller

    frame = load_breast_cancer(as_frame=True).frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    root = tmp_path / "p"
    root.mkdir()
    frame.iloc[:300].to_csv(root / "rows.csv", index=False)
    _project(root, trials=2, extra="")
    text = (root / "tidal.yaml").read_text().replace("gates: [accuracy >= 0.8]", "gates: [accuracy >= 0.5]")
    (root / "tidal.yaml").write_text(text + "retrain: {on: {new_data: {rows: 50}}, cooldown: {rows: 0}, "
                                            "max_per_day: 1000, min_labelled: 10, tune: every 2 retrains}\n")
    with Workspace.open(root, clock=SimulatedClock()) as ws:
        first = ws.run().model
        assert first is not None
        controller = Controller(ws.context())
        try:
            steps = []
            for part in (frame.iloc[300:380], frame.iloc[380:460]):
                _serve(ws, part)
                tick = controller.tick()
                assert tick.acted, tick
                mv = ws.models.get(f"cancer:{tick.champion}")
                steps.append((mv, next(s for s in ws.store.list_steps(mv.run_id) if s.name == "search")))
        finally:
            controller.release()
    (v2, refit), (v3, searched) = steps
    # retrain 1 of every 2: no search; the champion's params, the study that found them named
    assert refit.status.value == "reused" and "retrain.tune: every 2 retrains; retrain 1 refits" in refit.explain
    assert v2.lineage.params == first.lineage.params
    assert v2.lineage.extra["search"]["study"] == first.lineage.extra["search"]["study"]
    assert v2.lineage.extra["search"]["params_from"] == f"cancer:{first.version}"
    # retrain 2: a search of its own, on its own training rows
    assert searched.status.value == "done" and searched.outputs["new_trials"] == 2
    assert v3.lineage.extra["search"]["study"] != first.lineage.extra["search"]["study"]
    assert "params_from" not in v3.lineage.extra["search"]


KILLED = """
import os, signal, sys
from tidal import Workspace
from tidal.core.progress import listening

def kill_after_three(what, done, total):
    if what == "trial" and done == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: as a machine that loses power

with listening(kill_after_three):
    Workspace.open(sys.argv[1]).run()
"""


def test_a_killed_search_resumes_from_its_stored_trials(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    root = _project(tmp_path / "p", trials=5)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2] / "src"),
                                                                      os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", KILLED, str(root)], env=env, timeout=240, capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    ws = Workspace.open(root)
    first = _trials(ws)
    assert [t.info["trial"] for t in first] == [0, 1, 2]
    result = ws.run()
    out = next(s for s in result.steps if s.name == "search").outputs
    assert out["trials"] == 5 and out["new_trials"] == 2
    after = _trials(ws)
    assert [(t.id, t.info["params"]) for t in after[:3]] == [(t.id, t.info["params"]) for t in first]
    assert result.model is not None and result.model.lineage.extra["search"]["study"] == out["study"]
