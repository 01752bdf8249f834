"""``tidal run`` on a folder of class folders of real images (scikit-learn's digits as PNG files): collect →
validate → split → prepare → train (scikit-learn's MLP on the flattened, normalised pixels) → gate →
register; a broken image is refused in one line with nothing stored changed, or left out when the spec says
skip; a rerun on the same images reuses every step."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.e2e.refusals import fails
from tests.images_data import digits_spec, write_folders
from tidal import Workspace

Cli = Callable[..., subprocess.CompletedProcess[str]]

SPEC = digits_spec(model="  estimator: sklearn.neural_network.MLPClassifier\n"
                          "  params: {hidden_layer_sizes: [32], max_iter: 300}\n",
                   checks="{size: [8, 8], channels: 1, on_error: %s}",
                   prepare="{color: grey, augment: {rotate: 5}}", gates="[accuracy >= 0.7]")


def _state(project: Path) -> tuple[list[tuple[int, str]], int, int]:
    with Workspace.open(project) as ws:
        models = [(m.version, m.state.value) for m in ws.models.list("digits")]
        runs = ws.store.list_runs("digits")
        return models, len(ws.store.list_snapshots("digits")), sum(r.status.value == "succeeded" for r in runs)


def test_run_on_images_then_refuse_or_skip_a_broken_one(tmp_path: Path, cli: Cli) -> None:
    write_folders(tmp_path / "data" / "train", per_class=16)
    (tmp_path / "tidal.yaml").write_text(SPEC % "refuse")

    first = cli("run", "--json", check=True)
    out = json.loads(first.stdout)
    assert [s["status"] for s in out["steps"]] == ["done"] * 8
    assert out["model"]["version"] == 1 and out["model"]["state"] == "deployed"
    assert out["metrics"]["accuracy"] >= 0.7 and out["warnings"] == []
    shown = json.loads(cli("runs", "show", out["run_id"][:8], "--json", check=True).stdout)
    assert shown["metrics"]["validation.accuracy"] == out["metrics"]["accuracy"]
    assert len(shown["info"]["snapshot"]) == 64
    with Workspace.open(tmp_path) as ws:  # the run keeps a contact sheet of its images
        sheets = ws.runs.get(out["run_id"]).artifacts
        png, page = ws.artifacts.get(sheets["contact_sheet.png"]), ws.artifacts.get(sheets["contact_sheet.html"])
        assert png.startswith(b"\x89PNG") and b"data:image/png;base64," in page

    again = json.loads(cli("run", "--json", check=True).stdout)  # the same files: every step reused
    assert [s["status"] for s in again["steps"]] == ["reused"] * 8

    before = _state(tmp_path)
    broken = sorted((tmp_path / "data" / "train" / "3").glob("*.png"))[0]
    broken.write_bytes(broken.read_bytes()[:40])
    fails(cli("run"), "1 image cannot be used:", f"3/{broken.name}: a broken or truncated image",
          "data.checks.images.on_error: skip")
    assert _state(tmp_path) == before  # no model, no snapshot, no succeeded run added

    (tmp_path / "tidal.yaml").write_text(SPEC % "skip")
    skipped = cli("run", "--json", check=True)
    result = json.loads(skipped.stdout)
    assert any(f"1 image left out (data.checks.images.on_error: skip): 3/{broken.name}" in w
               for w in result["warnings"]), result["warnings"]
    assert result["model"]["version"] == 2


def test_a_bomb_a_huge_image_and_text_named_png_stop_the_run_in_one_line_with_nothing_stored(
        tmp_path: Path, cli: Cli) -> None:
    """#13 point 7 through the CLI: each bad file named by its path, exit 2, no snapshot, run or model."""
    from tests.unit.data.test_images_checks import bomb_png

    write_folders(tmp_path / "data" / "train", per_class=8)
    (tmp_path / "tidal.yaml").write_text(SPEC % "refuse")
    before = _state(tmp_path)
    (tmp_path / "data" / "train" / "1" / "bomb.png").write_bytes(bomb_png(100_000, 100_000))  # 10 G pixels
    (tmp_path / "data" / "train" / "2" / "huge.png").write_bytes(bomb_png(8_000, 6_000))  # 48 M: over 40 M
    (tmp_path / "data" / "train" / "3" / "notes.png").write_text("not a picture at all\n")
    line = fails(cli("run"), "3 images cannot be used:", "1/bomb.png", "2/huge.png",
                 "3/notes.png: not a PNG or JPEG image")
    assert "over the limit" in line or "decompression bomb" in line, line
    assert _state(tmp_path) == before == ([], 0, 0)
