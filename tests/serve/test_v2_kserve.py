"""KServe's own Python REST client (``kserve.InferenceRESTClient``, protocol v2) against a real ``tidal serve``:
health and readiness, JSON and binary tensors answered as ``/predict`` answers the same rows, logged, and an
unknown model refused with a 404 the client reports.

kserve pins pandas<3 and protobuf<7, so it cannot share tidal's venv: ``make test`` makes ``.venv-kserve``
(tests/serve/kserve/requirements.txt) and passes its interpreter in ``TIDAL_TEST_KSERVE_PYTHON``; the client
runs there in a subprocess (tests/serve/kserve/client.py). Outside ``make test`` the test skips, saying so;
under ``make test`` a missing interpreter is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.serve.server import ServerProcess
from tests.serve.test_v2 import COLUMNS, count_logged, rows

CLIENT = Path(__file__).parent / "kserve" / "client.py"
PYTHON = os.environ.get("TIDAL_TEST_KSERVE_PYTHON")

pytestmark = pytest.mark.skipif(PYTHON is None, reason="set TIDAL_TEST_KSERVE_PYTHON (make test makes .venv-kserve "
                                                       "with kserve and sets it)")


def test_kserve_client_infers_as_predict_does(server: ServerProcess, project: Path) -> None:
    assert PYTHON is not None and Path(PYTHON).is_file(), f"TIDAL_TEST_KSERVE_PYTHON={PYTHON} is not an interpreter"
    batch = rows(7)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        expected = http.post("/predict", json={"instances": batch}).json()
    logged_before = count_logged(project)
    done = subprocess.run([PYTHON, str(CLIENT), server.url, "elec2", json.dumps(batch)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout)
    assert got["live"] is True and got["ready"] is True and got["model_ready"] is True
    ids: set[str] = set()
    for how in ("binary=False", "binary=True"):
        answer = got[how]
        assert answer["model_name"] == "elec2", how  # (kserve's InferResponse.from_bytes drops model_version)
        assert answer["id"] == f"kserve-{how.removeprefix('binary=')}", how  # the request's id, echoed
        outputs = answer["outputs"]
        assert set(outputs) == {"predict", "probabilities", "prediction_id"}, how
        assert outputs["predict"]["data"] == expected["predictions"], how
        assert outputs["probabilities"]["shape"] == [7, 2], how
        flat = [p for row in expected["probabilities"] for p in row]
        assert outputs["probabilities"]["data"] == flat, how  # the same floats, bit for bit
        ids |= set(outputs["prediction_id"]["data"])
    assert len(ids) == 14 and not ids & set(expected["prediction_ids"])
    assert count_logged(project) == logged_before + 14  # each of the client's rows logged once
    assert "404" in got["unknown_model"], got["unknown_model"]
    assert set(COLUMNS) == set(batch[0])
