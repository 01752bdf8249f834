"""bench/images.py's options and arithmetic, without training or serving: what ``--quick`` sets and what is
refused, the overhead on the epoch time (first epochs left out) and its aim, the serving ratios and aims,
and the request rows it sends (one digit per class in turn, base64 PNG)."""

from __future__ import annotations

import base64
import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def images() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("images")
    finally:
        sys.path.remove(str(BENCH))


def test_quick_and_refused_options(images: Any) -> None:
    quick = images.parse_args(["--quick"])
    assert (quick.epochs, quick.seconds, quick.only, quick.repeat) == (3, 3.0, "both", 1)
    assert images.parse_args(["--quick", "--epochs", "5", "--seconds", "1"]).epochs == 5
    default = images.parse_args([])
    assert default.epochs is None and default.seconds == 10.0 and default.repeat == 3  # None: the example's
    for bad in (["--epochs", "1"], ["--seconds", "0"], ["--only", "everything"], ["--repeat", "0"]):
        with pytest.raises(SystemExit):
            images.parse_args(bad)


def test_overhead_is_on_the_epochs_after_the_first(images: Any) -> None:
    tidal = {"params": {"epochs": 3}, "steps_s": {"collect": 0.5, "train": 3.0, "register": 0.5}, "fit_s": 2.5,
             "wall_s": 8.0}
    plain = {"epochs_s": [0.5, 0.1, 0.1], "loop_s": 0.7, "decode_s": 0.3}
    out = images.training_summary(tidal, [{"epochs_s": [0.105, 0.105]}], [plain], plain_wall=4.0)
    assert out["tidal_epoch_s"] == pytest.approx(0.105) and out["plain_epoch_s"] == pytest.approx(0.1)
    assert out["overhead"] == pytest.approx(0.05) and out["aim"] == {"epoch time overhead <= 10%": True}
    assert out["train_step_overhead"] == pytest.approx(2.0)  # 3.0 against 0.3 + 0.7
    assert out["tidal_train_step_fixed_s"] == pytest.approx(3.0 - 3 * 0.105)
    assert out["other_steps_s"] == {"collect": 0.5, "register": 0.5}
    assert out["outside_steps_s"] == pytest.approx(4.0)
    slow = images.training_summary(tidal, [{"epochs_s": [0.12, 0.12]}], [plain], plain_wall=4.0)
    assert slow["aim"] == {"epoch time overhead <= 10%": False}
    # the median over the repeats: one epoch hit by someone else's work does not move it
    spiked = images.training_summary(tidal, [{"epochs_s": [0.105, 0.9]}, {"epochs_s": [0.105, 0.104]}],
                                     [plain, {**plain, "epochs_s": [0.5, 0.1, 0.3]}], plain_wall=4.0)
    assert spiked["tidal_epoch_s"] == pytest.approx(0.105) and spiked["plain_epoch_s"] == pytest.approx(0.1)
    assert spiked["repeats"] == 2


def test_serving_ratio_per_cell_and_its_aim(images: Any) -> None:
    cells = ["1 image, concurrency 1", "64 images, concurrency 1"]
    servers = {"tidal": {cells[0]: {"rps": 900.0}, cells[1]: {"rps": 70.0}},
               "floor": {cells[0]: {"rps": 1000.0}, cells[1]: {"rps": 100.0}}}
    out = images.serving_ratios(servers, cells)
    assert out["ratios"] == {cells[0]: 0.9, cells[1]: 0.7}
    assert out["aims"] == {cells[0]: {"tidal >= 0.8x floor": True}, cells[1]: {"tidal >= 0.8x floor": False}}
    assert images.serving_ratios({"tidal": servers["tidal"]}, cells) == {"ratios": {}, "aims": {}}


def test_request_rows_take_each_class_in_turn(images: Any, tmp_path: Path) -> None:
    for label in ("0", "1"):
        for i in range(3):
            path = tmp_path / "data" / "train" / label / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"png {label}{i}".encode())
    rows = images.image_rows(tmp_path, "image", 4)
    assert [base64.b64decode(r["image"]).decode() for r in rows] == ["png 00", "png 10", "png 01", "png 11"]
