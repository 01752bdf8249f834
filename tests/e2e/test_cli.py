"""End to end through the ``tidal`` command (a real subprocess) on the Elec2 example."""

from __future__ import annotations

import json
from pathlib import Path


def test_init_run_rerun_and_inspect(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli("init", "proj", "--example", "elec2", check=True)
    assert "created" in proc.stdout
    project = tmp_path / "proj"
    assert (project / "tidal.yaml").is_file() and (project / "data" / "elec2.csv.gz").is_file()
    assert (project / "data" / "PROVENANCE.md").is_file()

    first = cli("-C", "proj", "run", check=True)
    assert "elec2:1" in first.stdout and "deployed" in first.stdout and "champion" in first.stdout
    assert (project / ".tidal" / "tidal.db").is_file()

    second = cli("-C", "proj", "run", "--explain", check=True)
    for step in ("collect", "validate", "split", "profile", "train", "evaluate", "gate", "register"):
        line = next(ln for ln in second.stdout.splitlines() if f" {step} " in f" {ln} ")
        assert "reused" in line, line
    assert "same code, inputs and environment" in second.stdout

    as_json = json.loads(cli("-C", "proj", "run", "--json", check=True).stdout)
    assert [s["status"] for s in as_json["steps"]] == ["reused"] * 8
    assert as_json["model"]["version"] == 1 and as_json["champion"] == 1

    runs = json.loads(cli("-C", "proj", "runs", "ls", "--json", check=True).stdout)
    assert len(runs) == 3 and all(r["status"] == "succeeded" for r in runs)
    shown = json.loads(cli("-C", "proj", "runs", "show", runs[-1]["id"][:8], "--json", check=True).stdout)
    assert shown["metrics"]["validation.accuracy"] > 0.7
    assert shown["steps"][0]["name"] == "collect"
    assert "runs" in cli("-C", "proj", "runs", "ls", check=True).stdout

    models = json.loads(cli("-C", "proj", "models", "ls", "--json", check=True).stdout)
    assert [(m["name"], m["version"], m["state"], m["aliases"]) for m in models] == [
        ("elec2", 1, "deployed", ["champion"])]
    show = cli("-C", "proj", "models", "show", "elec2", check=True).stdout
    assert "elec2:1" in show and "lineage" in show and "alias.moved" in show
    assert "why serving: elec2:1 serves as champion since" in show and "(trigger: manual)" in show

    events = json.loads(cli("-C", "proj", "events", "--json", check=True).stdout)
    kinds = [e["kind"] for e in events]
    assert kinds.count("model.registered") == 1 and "gate.passed" in kinds

    promoted = cli("-C", "proj", "promote", "elec2", "1", "--alias", "challenger", check=True)
    assert "challenger" in promoted.stdout


def test_unknown_model_and_run_are_one_line_errors(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    cli("init", "p", "--example", "elec2", check=True)
    for args, needle in ((("models", "show", "nope"), "no model named 'nope'"),
                         (("runs", "show", "ffffffff"), "no run with id"),
                         (("promote", "elec2", "3"), "no model named 'elec2'")):
        proc = cli("-C", "p", *args)
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
