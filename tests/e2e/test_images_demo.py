"""`tidal demo --example digits-drift` (issue #13, point 6): the live loop on images. The first champion is
trained on the first 20 % of the digits stream, the rest is sent to a real server as base64 PNGs with their
labels; from row 800 of the stream the digits turn and darken, the monitor detects the drift, the loop retrains
and the accuracy after the change recovers where the static model's does not. Slow (a network trained a few
times while a server runs): about 90 seconds of CPU."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.refusals import fails
from tidal.data.images.examples import DRIFT_AT

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.slow
def test_the_image_demo_detects_the_drift_and_recovers_the_accuracy(tmp_path: Path, cli: Cli) -> None:
    proc = cli("demo", "demo", "--example", "digits-drift", "--json", check=True)
    shown = proc.stderr
    summary = json.loads(proc.stdout)
    first = int(1797 * 0.2)  # the rows the first champion is trained on; the stream starts after them
    assert summary["rows"] == 1797 - first and summary["beats_static"], summary
    # detected by the drift trigger (image statistics and the network's embedding), after the change began
    detected = summary["drift_detected_at"]
    assert detected is not None and detected > DRIFT_AT - first, summary
    assert "drift detected at streamed row" in shown and "accuracy recovered" in shown, shown[-3000:]
    after = summary["after_change"]
    assert after["recovered"] and after["loop"] >= after["static"] + 0.2, after
    assert summary["loop"]["promotions"] >= 1 and summary["loop"]["failures"] == 0
    spec = (tmp_path / "demo" / "tidal.yaml").read_text()
    assert "drift: {share: 0.5}" in spec and "source: data/history.parquet" in spec
    assert (tmp_path / "demo" / "reports" / "monitor.html").read_text().count("image.emb") >= 3


def test_an_unknown_demo_example_is_one_line_and_writes_nothing(tmp_path: Path, cli: Cli) -> None:
    fails(cli("demo", "demo", "--example", "mnist"), "tidal demo has no example 'mnist'", "elec2, digits-drift")
    assert not (tmp_path / "demo").exists()
