"""The whole loop on images (issue #13, "Shown by"): `tidal init --example digits` → `tidal run` → `tidal serve`
(a real server on a free loopback port) → base64 PNG digits to ``/predict`` → their labels to ``/feedback`` →
digits whose capture conditions change (turned and darkened, as ``digits-drift`` changes its stream) → the
monitor sees the drift on the image statistics → `tidal loop --once` retrains on the labelled feedback, gates
and promotes → the running server hot-swaps: its answers come from the new version, which reads the changed
digits better than the first one did."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.serve.server import ServerProcess
from tidal.data.images.examples import changed, digits_images, png

Cli = Callable[..., subprocess.CompletedProcess[str]]
pytestmark = pytest.mark.slow  # trains a network three times and serves it: tens of seconds

#: The loop's knobs for a short test: a window of the changed digits alone, a retrain on drift as soon as a
#: few hundred labels are in, and the example's network trained for 3 epochs instead of 8.
LOOP = """\
monitor:
  window: 200
retrain:
  on:
    drift: {share: 0.5}
  cooldown: {rows: 100}
  min_labelled: 100
"""
#: Which digits are sent: every 9th from the same writers as training (unchanged), then two disjoint sets
#: turned and darkened: the drifted traffic the loop learns from, and a fresh set the new version is judged on.
SAME, DRIFTED, FRESH = range(0, 1797, 9), range(4, 1797, 6), range(7, 1797, 9)


@pytest.fixture
def project(tmp_path: Path, cli: Cli) -> Path:
    cli("init", "--example", "digits", "digits", check=True)
    root = tmp_path / "digits"
    spec = root / "tidal.yaml"
    text = spec.read_text()
    assert "    epochs: 8\n" in text
    spec.write_text(text.replace("    epochs: 8\n", "    epochs: 3\n") + LOOP)
    return root


@pytest.fixture
def server(project: Path, cli: Cli) -> Iterator[str]:
    """`tidal run`, then `tidal serve` on a free port, stopped at the end."""
    out = cli("-C", "digits", "run", check=True).stdout
    assert "Val accuracy" in out and "deployed" in out, out
    with ServerProcess(project, cli=True).start(timeout=60) as served:
        yield served.url


def _send(http: httpx.Client, rows: range, *, turn: bool, label: bool = True) -> tuple[int, float]:
    """POST the digits ``rows`` (turned and darkened with ``turn``) as base64 PNGs, then their labels as
    feedback (with ``label``); the version that answered and its accuracy."""
    images, labels = digits_images()
    pixels = [changed(images[i]) if turn else images[i] for i in rows]
    answer = http.post("/predict", json={"instances": [
        {"image": base64.b64encode(png(p)).decode("ascii")} for p in pixels]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    truth = [str(labels[i]) for i in rows]  # the class folders name the classes: "0" ... "9"
    if label:
        stored = http.post("/feedback", json=[{"prediction_id": pid, "label": y}
                                              for pid, y in zip(body["prediction_ids"], truth, strict=True)])
        assert stored.status_code == 200, stored.text
    accuracy = float(np.mean([str(p) == y for p, y in zip(body["predictions"], truth, strict=True)]))
    return int(body["model"]["version"]), accuracy


def test_digits_served_drift_and_the_loop_retrains_promotes_and_the_server_hot_swaps(project: Path,
                                                                                     server: str) -> None:
    from tidal import Workspace  # monitor and the loop's one step in this process: torch is imported once

    with httpx.Client(base_url=server, timeout=30) as http, Workspace.open(project) as ws:
        version, same = _send(http, SAME, turn=False)
        assert version == 1 and same >= 0.9, same
        # nothing changed yet: no drift, on the image statistics or on the network's own embedding
        quiet = ws.monitor()
        columns = {c["column"]: c["drifted"] for c in quiet.body["drift"]["columns"]}
        assert not quiet.drifted and not any(columns.values()), columns
        assert {"image.brightness", "image.emb1", "image.emb2", "image.emb3"} <= set(columns), columns
        assert quiet.body["embedding"]["layer"] == "penultimate"

        # the camera is knocked and ages: the digits come turned and darkened, and the champion reads them badly
        version, before = _send(http, DRIFTED, turn=True)
        assert version == 1 and before < same - 0.2, (before, same)

        tick = ws.loop_once()  # `tidal loop --once`: monitor, decide, retrain, gate, promote
        assert tick.decision is not None and tick.decision.retrain and tick.decision.trigger == "drift", tick
        seen = ws.reports()[0]
        moved = set(seen.body["drift"]["drifted_columns"])
        assert seen.drifted and {"image.brightness", "image.emb1"} <= moved, moved
        assert tick.events[0].kind == "loop.retrain"
        kinds = [e.kind for e in ws.events()]
        assert {"monitor.alert", "gate.passed", "alias.moved"} <= set(kinds), kinds
        assert ws.models.get("digits:champion").version == 2

        # the server hot-swaps to version 2 by itself (deploy.reload_seconds: 1), with no restart
        one = {"instances": [{"image": base64.b64encode(png(digits_images()[0][0])).decode("ascii")}]}
        deadline = time.monotonic() + 20
        while (answered := http.post("/predict", json=one).json())["model"]["version"] != 2:
            assert time.monotonic() < deadline, answered
            time.sleep(0.25)
        # and reads digits changed the same way, which neither version has seen, far better than version 1 did
        version, after = _send(http, FRESH, turn=True, label=False)
        assert version == 2 and after >= before + 0.2, (before, after)
    print(f"accuracy on the changed digits: version 1 {before:.3f}, version 2 {after:.3f}; unchanged {same:.3f}")
