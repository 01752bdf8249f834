"""Monitoring an image model (issue #13, point 5) through a real ``tidal serve`` log: scikit-learn's digits as
PNG class folders, ``tidal run`` (an MLPClassifier), base64 PNGs sent to ``/predict``, then
``Workspace.monitor``: a window of the same digits drifts on nothing; darkened, blurred and turned digits drift
on the statistic each change moves (brightness, sharpness, orientation; the pixel components when named), and
the HTML report shows the statistics and thumbnails of the window beside the training images."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageFilter

from tests.images_data import digits, digits_spec
from tests.serve.server import ServerProcess
from tidal.core.entities import Report

SPEC = digits_spec(checks=None)
#: Training takes every third digit, the window 200 others spread over the whole set, so that both come from
#: the same writers (the digits are in writer order: the first rows alone would differ from later ones).
TRAIN, WINDOW = range(0, 1797, 3), range(1, 1797, 9)
STATS = {"image.brightness", "image.contrast", "image.sharpness", "image.orientation"}


def _png(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _dark(a: np.ndarray) -> np.ndarray:
    return (a * 0.5).astype(np.uint8)


def _blur(a: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(a).filter(ImageFilter.BoxBlur(1)))


def _turn(a: np.ndarray) -> np.ndarray:
    return np.rot90(a).copy()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tidal import Workspace

    root = tmp_path_factory.mktemp("imgmon") / "digits"
    images, labels = digits()
    for i in TRAIN:
        folder = root / "data" / "train" / str(labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(folder / f"{i:04d}.png")
    (root / "tidal.yaml").write_text(SPEC)
    with Workspace.open(root) as ws:
        mv = ws.run().model
        stats = mv.profile["features"]["columns"]["image"]["statistics"]
        # one size (8x8): the server refuses any other, so width and height are not monitored
        assert set(stats["columns"]) == {s.split(".")[1] for s in STATS} and len(stats["thumbnails"]) == 8
        assert {f"image.{s}" for s in stats["columns"]} <= set(mv.profile["holdout_drift"]["columns"])
    return root


def _send_and_monitor(server: ServerProcess, project: Path, change: Callable[[np.ndarray], np.ndarray],
                      html: Path | None = None) -> tuple[dict[str, bool], Report]:
    from tidal import Workspace

    images, _ = digits()
    rows = [{"image": _png(change(images[i]))} for i in WINDOW]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        answer = http.post("/predict", json={"instances": rows})
        assert answer.status_code == 200, answer.text
    with Workspace.open(project) as ws:
        report = ws.monitor(window=len(WINDOW), html=html)
    columns = {c["column"]: c for c in report.body["drift"]["columns"]}
    assert set(columns) == STATS, "the image column is judged on its statistics"
    assert all(c["status"] == "tested" and c["n_current"] == len(WINDOW) for c in columns.values())
    return {name: bool(c["drifted"]) for name, c in columns.items()}, report


def test_image_statistics_drift_on_what_changed(project: Path, tmp_path: Path) -> None:
    from tidal import Workspace

    with ServerProcess(project).start() as server:
        same, report = _send_and_monitor(server, project, lambda a: a)
        assert not any(same.values()) and not report.alerts, same
        dark, report = _send_and_monitor(server, project, _dark)
        assert dark["image.brightness"] and dark["image.contrast"] and not dark["image.orientation"], dark
        # the dataset drifts (the loop's drift trigger): the alert names the statistics that moved
        assert report.drifted and "image.brightness (ks" in report.alerts[0], report.alerts
        blurred, report = _send_and_monitor(server, project, _blur)
        assert blurred["image.sharpness"] and not blurred["image.brightness"], blurred
        html = tmp_path / "report.html"
        turned, report = _send_and_monitor(server, project, _turn, html=html)
        assert turned == {s: s == "image.orientation" for s in STATS}, turned
        panel = report.body["images"][0]
        assert panel["column"] == "image" and len(panel["window"]) == 8 and len(panel["reference"]) == 8
        moved = {s["name"]: (s["reference"], s["window"]) for s in panel["statistics"]}
        ref, now = moved["image.orientation"]
        assert abs(now - (1 - ref)) < 0.05  # turned by 90 degrees: the horizontal share of gradients swaps

    # the pixel components, named in monitor.drift.columns, see the turned digits too: the dataset drifts
    (project / "tidal.yaml").write_text(SPEC + "monitor:\n  drift:\n    columns: [image.orientation, image.pc1, "
                                        "image.pc2, image.pc3]\n")
    with Workspace.open(project) as ws:
        report = ws.monitor(window=len(WINDOW))
    drifted = set(report.body["drift"]["drifted_columns"])
    assert report.drifted and "image.orientation" in drifted and drifted & {"image.pc1", "image.pc2", "image.pc3"}
    assert [s["name"] for s in report.body["images"][0]["statistics"]] == [
        "image.orientation", "image.pc1", "image.pc2", "image.pc3"]

    page = html.read_text()
    assert "<h2>Images</h2>" in page and "image.orientation" in page
    # 8 thumbnails of the window beside the 8 of the training images the version keeps
    assert page.count("class='thumb' src='data:image/png;base64,") == 16
