"""Bad input through the CLI: one line that names the problem and the fix, exit code 2 (3 for a model that
failed its gate), no traceback, and nothing already stored is lost or corrupted."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import _cli
from tests.e2e.refusals import fails
from tidal import Workspace

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _champion_intact(project: Path) -> None:
    """The earlier champion is still registered, serving and loadable."""
    with Workspace.open(project) as ws:
        mv = ws.models.get("elec2:champion")
        assert mv.version == 1
        model = ws.models.load("elec2:champion")
        assert hasattr(model, "predict")


@pytest.fixture
def trained(small_project: Path) -> tuple[Path, Cli]:
    cli = _cli(small_project)
    cli("run", check=True)
    return small_project, cli


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def test_malformed_yaml(trained: tuple[Path, Cli]) -> None:
    project, cli = trained
    _edit(project / "tidal.yaml", "  target: up", "  target: up\n    oops: [")
    fails(cli("run"), "tidal.yaml", "line")
    _edit(project / "tidal.yaml", "  target: up\n    oops: [", "  target: up")
    _champion_intact(project)


def test_unknown_key_suggests_the_nearest(trained: tuple[Path, Cli]) -> None:
    project, cli = trained
    _edit(project / "tidal.yaml", "params:", "paramz:")
    fails(cli("run"), "model.paramz", "params")


def test_missing_data_file(trained: tuple[Path, Cli]) -> None:
    project, cli = trained
    (project / "data" / "elec2.csv").rename(project / "data" / "moved.csv")
    fails(cli("run"), "not found", "elec2.csv")
    (project / "data" / "moved.csv").rename(project / "data" / "elec2.csv")
    _champion_intact(project)


def test_missing_target_column(trained: tuple[Path, Cli]) -> None:
    project, cli = trained
    _edit(project / "tidal.yaml", "target: up", "target: upp")
    fails(cli("run"), "upp")
    _champion_intact(project)


def test_text_in_a_numeric_column(trained: tuple[Path, Cli]) -> None:
    project, cli = trained
    data = project / "data" / "elec2.csv"
    lines = data.read_text().splitlines()
    cells = lines[18].split(",")
    cells[1] = "abc"
    lines[18] = ",".join(cells)
    data.write_text("\n".join(lines) + "\n")
    line = fails(cli("run"), "nswprice")
    assert "abc" not in line.replace("nswprice", "")  or "row" in line
    with Workspace.open(project) as ws:
        assert any(e.kind == "data.rejected" for e in ws.events())
        assert [r.status.value for r in ws.runs.list()][:1] == ["failed"]
    _champion_intact(project)


@pytest.mark.parametrize("content", ["", "period,nswprice,nswdemand,vicprice,vicdemand,transfer,up\n"])
def test_empty_file(trained: tuple[Path, Cli], content: str) -> None:
    project, cli = trained
    (project / "data" / "elec2.csv").write_text(content)
    fails(cli("run"), "no rows")
    _champion_intact(project)


def test_new_category_warns_by_default_and_fails_when_asked(tmp_path: Path, small_project: Path) -> None:
    data = small_project / "data" / "elec2.csv"
    lines = data.read_text().splitlines()
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    out = [lines[0] + ",weekday"] + [f"{ln},{days[(i // 48) % 7]}" for i, ln in enumerate(lines[1:])]
    data.write_text("\n".join(out) + "\n")
    cli = _cli(small_project)
    cli("run", check=True)
    out[-1] = out[-1].rsplit(",", 1)[0] + ",holiday"
    data.write_text("\n".join(out) + "\n")
    proc = cli("run", check=True)
    assert "holiday" in proc.stdout and "weekday" in proc.stdout  # a warning, recorded and shown
    with Workspace.open(small_project) as ws:
        assert any(e.kind == "data.warning" and "holiday" in e.message for e in ws.events())
    _edit(small_project / "tidal.yaml", "  features: null", "  features: null\n  checks: {unseen_category: error}")
    fails(cli("run"), "weekday", "holiday")


def test_tampered_model_artifact(trained: tuple[Path, Cli]) -> None:
    project, cli = trained
    with Workspace.open(project) as ws:
        digest = ws.models.get("elec2:champion").artifact_digest
    path = project / ".tidal" / "artifacts" / digest[:2] / digest
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    _edit(project / "tidal.yaml", "max_iter: 30", "max_iter: 31")  # a new candidate must face the champion
    fails(cli("run"), "elec2:1", "modified or corrupted")
    with Workspace.open(project) as ws:
        from tidal import IntegrityError

        with pytest.raises(IntegrityError):
            ws.models.load("elec2:champion")
        assert ws.models.get("elec2:champion").version == 1  # the registry itself is intact


def test_a_failed_gate_rejects_the_version_and_the_champion_stays(trained: tuple[Path, Cli]) -> None:
    project, cli = trained
    _edit(project / "tidal.yaml", "max_iter: 30", "max_iter: 5")
    _edit(project / "tidal.yaml", "accuracy >= 0.60", "accuracy >= 0.99")
    line = fails(cli("run"), "elec2:2", "rejected", "accuracy", "champion stays elec2:1", code=3)  # its own code
    assert "0.99" in line
    models = json.loads(cli("models", "ls", "--json", check=True).stdout)
    assert [(m["version"], m["state"], m["aliases"]) for m in models] == [
        (1, "deployed", ["champion"]), (2, "rejected", [])]
    assert any("0.99" in r for r in models[1]["reasons"])
    promote = cli("promote", "elec2", "2")
    fails(promote, "rejected", "cannot be champion")
    _champion_intact(project)
