"""The whole loop with no local state besides ``tidal.yaml`` (issue #16, point 4): the metadata store and the
prediction log on PostgreSQL, the artifacts — and the data the project reads — in S3-compatible object storage
(moto's S3 server, started by the test on 127.0.0.1). `tidal run` → `tidal serve` → predictions and feedback
over HTTP → `tidal loop --once` retrains on drift and promotes → the server hot-swaps; afterwards the project
folder holds tidal.yaml and nothing else. Runs when TIDAL_TEST_POSTGRES_URL is set (.ci/run sets it).
"""

from __future__ import annotations

import gzip
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import ELEC2, _cli
from tests.contract.conftest import postgres_url  # noqa: F401  (the fixture: a fresh schema per test)
from tests.serve.server import ServerProcess, free_port

pytestmark = pytest.mark.slow  # a real loop on three real services: tens of seconds

BUCKET = "tidal-remote-test"
SPEC = f"""\
version: 1
name: elec2
data: {{source: s3://{BUCKET}/data/elec2.csv, target: up}}
model:
  estimator: sklearn.ensemble.HistGradientBoostingClassifier
  params: {{max_iter: 30}}
  seed: 0
validate: {{split: {{method: time, test_size: 0.2}}, metrics: [accuracy], gates: [accuracy >= 0.5]}}
deploy: {{reload_seconds: 0.5}}
monitor: {{window: 300}}
retrain:
  on: {{drift: {{share: 0.3}}}}
  cooldown: {{rows: 100}}
  min_labelled: 100
"""


@pytest.fixture
def s3() -> Iterator[dict[str, str]]:
    """moto's S3 server on a free loopback port, and the environment that points s3fs at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {"FSSPEC_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        yield env
    finally:
        server.stop()


def test_the_loop_runs_on_postgres_and_object_storage_alone(tmp_path: Path, s3: dict[str, str],
                                                            postgres_url: str) -> None:  # noqa: F811
    import s3fs

    frame = pd.read_csv(io.BytesIO(gzip.decompress((ELEC2 / "data" / "elec2.csv.gz").read_bytes())))
    fs = s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=s3["FSSPEC_S3_ENDPOINT_URL"])
    fs.mkdir(BUCKET)
    with fs.open(f"{BUCKET}/data/elec2.csv", "wb") as f:
        f.write(frame.iloc[:3000].to_csv(index=False).encode())

    project = tmp_path / "project"
    project.mkdir()
    (project / "tidal.yaml").write_text(SPEC)
    env = {**s3, "TIDAL_STORE_URL": postgres_url, "TIDAL_PREDICTIONS_URL": postgres_url,
           "TIDAL_ARTIFACTS_URL": f"s3://{BUCKET}/artifacts"}
    os.environ.update(env)
    try:
        cli = _cli(project)
        out = cli("run", check=True).stdout
        assert "deployed" in out, out
        with ServerProcess(project, cli=True, env=env, log=tmp_path / "server.log").start(timeout=90) as server, \
                httpx.Client(base_url=server.url, timeout=30) as http:
            rows = frame.iloc[30_000:30_400]
            shifted = rows.drop(columns=["up"]).assign(nswprice=lambda f: f["nswprice"] * 3 + 0.1,
                                                       vicprice=lambda f: f["vicprice"] * 3 + 0.05)
            for lo in range(0, len(rows), 50):
                answer = http.post("/predict", json={"instances": shifted.iloc[lo:lo + 50].to_dict(orient="records")})
                assert answer.status_code == 200, answer.text
                labels = rows["up"].iloc[lo:lo + 50].tolist()
                fed = http.post("/feedback", json=[{"prediction_id": i, "label": int(y)} for i, y in
                                                   zip(answer.json()["prediction_ids"], labels, strict=True)])
                assert fed.status_code == 200, fed.text
            tick = cli("loop", "--once", "--json", check=True)
            assert '"drift"' in tick.stdout, tick.stdout
            deadline = time.monotonic() + 30
            while http.get("/model").json()["version"] != 2:
                assert time.monotonic() < deadline, "the server did not swap to version 2"
                time.sleep(0.25)
        # every byte tidal wrote went to PostgreSQL or the object store
        assert sorted(p.name for p in project.iterdir()) == ["tidal.yaml"]
        stored = fs.find(f"{BUCKET}/artifacts")
        assert len(stored) >= 6, stored  # snapshots, splits, models, profiles of both versions
    finally:
        for key in env:
            os.environ.pop(key, None)
