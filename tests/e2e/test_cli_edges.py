"""The edges of the ``tidal`` command a new user meets (issue #10, point 0), through a real subprocess:
``--json`` everywhere (errors too), ``--debug`` after the command, exit codes, monitoring with no traffic,
``init --source`` from the current folder, a failed step shown once, a busy port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import _cli

SMALL_ROWS = 3000


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _edit(project: Path, old: str, new: str) -> None:
    spec = project / "tidal.yaml"
    text = spec.read_text()
    assert old in text, old
    spec.write_text(text.replace(old, new))


def test_init_promote_and_rollback_take_json(tmp_path: Path, small_project: Path) -> None:
    cli = _cli(tmp_path)
    created = json.loads(cli("init", "fresh", "--example", "elec2", "--json", check=True).stdout)
    assert created == {"created": str(Path("fresh") / "tidal.yaml"), "project": "fresh", "next": "tidal -C fresh run"}
    assert (tmp_path / "fresh" / "tidal.yaml").is_file()

    run = _cli(small_project)
    run("run", check=True)
    _edit(small_project, "max_iter: 30", "max_iter: 31")  # a second model, promoted by the gate
    run("run", check=True)
    back = json.loads(run("rollback", "elec2", "--json", check=True).stdout)
    assert back == {"name": "elec2", "alias": "champion", "from": 2, "to": 1}
    moved = json.loads(run("promote", "elec2", "2", "--json", check=True).stdout)
    assert moved == {"name": "elec2", "alias": "champion", "from": 1, "to": 2}


def test_errors_with_json_are_an_object_on_stdout(tmp_path: Path) -> None:
    cli = _cli(tmp_path)
    missing = cli("-C", "nowhere", "runs", "ls", "--json")
    assert missing.returncode == 2
    body = json.loads(missing.stdout)
    assert set(body) == {"error", "hint"} and "tidal.yaml not found" in body["error"] and "tidal init" in body["hint"]
    assert "tidal.yaml not found" in _one_line(missing.stderr)

    usage = cli("events", "--json", "--limit", "many")
    assert usage.returncode == 2
    assert "--limit" in json.loads(usage.stdout)["error"] and "--help" in json.loads(usage.stdout)["hint"]
    assert "--limit" in _one_line(usage.stderr)

    plain = cli("-C", "nowhere", "runs", "ls")  # without --json stdout stays empty
    assert plain.returncode == 2 and plain.stdout == ""


def test_debug_is_accepted_after_the_command(tmp_path: Path) -> None:
    cli = _cli(tmp_path)
    for args in (("-C", "nowhere", "backtest", "--debug"), ("--debug", "-C", "nowhere", "backtest")):
        proc = cli(*args)
        assert proc.returncode == 1, proc.stderr  # the exception goes up as it is
        assert "Traceback" in proc.stderr and "tidal.yaml not found" in proc.stderr
    assert "tidal.yaml not found" in _one_line(cli("-C", "nowhere", "backtest").stderr)


def test_a_model_that_fails_its_gate_exits_3(small_project: Path) -> None:
    _edit(small_project, "    - accuracy >= 0.60", "    - accuracy >= 0.99")
    run = _cli(small_project)
    proc = run("run")
    assert proc.returncode == 3, proc.stderr
    assert "failed the gate and is rejected" in _one_line(proc.stderr)
    assert "rejected" in proc.stdout  # the run's own lines are still shown
    as_json = run("run", "--json", "--no-cache")
    assert as_json.returncode == 3
    body = json.loads(as_json.stdout)  # one document: the run's result with the error
    assert body["model"]["state"] == "rejected" and "failed the gate" in body["error"] and body["hint"]


def test_a_failed_train_step_is_shown_once(small_project: Path) -> None:
    _edit(small_project, "max_iter: 30", "max_iter: -3")
    proc = _cli(small_project)("run")
    assert proc.returncode == 2
    train_lines = [ln for ln in proc.stdout.splitlines() if ln.split()[1:2] == ["train"]]
    assert len(train_lines) == 1 and train_lines[0].startswith("✗ train") and "failed" in train_lines[0], proc.stdout
    for step in ("evaluate", "gate", "register"):
        assert any(ln.startswith(f"- {step}") and "skipped" in ln for ln in proc.stdout.splitlines()), step
    assert "max_iter" in _one_line(proc.stderr)


def test_monitor_with_no_traffic_stores_nothing_and_says_so(small_project: Path) -> None:
    run = _cli(small_project)
    run("run", check=True)
    text = run("monitor", "--html", "m.html", check=True)
    assert "nothing to judge: no predictions of elec2:1 yet" in text.stdout and "tidal serve" in text.stdout
    assert "drift share" not in text.stdout and not (small_project / "m.html").exists()
    body = json.loads(run("monitor", "--json", check=True).stdout)
    assert body["outcome"] == "no_predictions" and body["stored"] is False and body["window"]["rows"] == 0
    # the controller's ticks with no traffic still work, and store no empty report either
    tick = json.loads(run("loop", "--once", "--json", check=True).stdout)
    assert tick["champion"] == 1 and tick["acted"] is False
    assert json.loads(run("reports", "ls", "--json", check=True).stdout) == []


def test_init_source_is_read_from_the_current_folder(tmp_path: Path) -> None:
    import gzip

    from tests.conftest import ELEC2

    rows = gzip.decompress((ELEC2 / "data" / "elec2.csv.gz").read_bytes()).decode().splitlines()[:SMALL_ROWS + 1]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "e.csv").write_text("\n".join(rows) + "\n")
    cli = _cli(tmp_path)
    cli("init", "proj", "--source", "data/e.csv", "--target", "up", check=True)
    spec = (tmp_path / "proj" / "tidal.yaml").read_text()
    assert f"source: {tmp_path / 'data' / 'e.csv'}" in spec  # outside the project: absolute
    _edit(tmp_path / "proj", "params: {}", "params: {max_iter: 20}")
    assert "proj:1" in cli("-C", "proj", "run", check=True).stdout

    (tmp_path / "inside" / "data").mkdir(parents=True)
    (tmp_path / "inside" / "data" / "e.csv").write_text("\n".join(rows) + "\n")
    cli("init", "inside", "--source", "inside/data/e.csv", "--target", "up", check=True)
    assert "source: data/e.csv" in (tmp_path / "inside" / "tidal.yaml").read_text()  # inside: relative

    missing = cli("init", "other", "--source", "data/nope.csv", "--target", "up")
    assert missing.returncode == 2 and "data/nope.csv" in _one_line(missing.stderr)
    assert not (tmp_path / "other").exists()  # refused before anything was made
    url = cli("init", "db", "--source", "sqlite:///warehouse.db", "--target", "up", check=True)
    assert url.returncode == 0 and "source: sqlite:///warehouse.db" in (tmp_path / "db" / "tidal.yaml").read_text()


def test_serve_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    cli = _cli(tmp_path)
    cli("init", "p", "--example", "elec2", check=True)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "tidal", "-C", "p", "serve", "--port", str(port)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    line = _one_line(proc.stderr)
    assert line == f"error: port {port} on 127.0.0.1 is in use — choose another with --port or deploy.port"
    assert "Application startup" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("args", [("demo", "--json"), ("demo",)])
def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my notes")
    proc = _cli(tmp_path)(*args, "mine")
    assert proc.returncode == 2
    assert "mine is not empty (notes.txt) and tidal demo did not make it" in _one_line(proc.stderr)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "my notes"
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
    if "--json" in args:
        assert "tidal demo did not make it" in json.loads(proc.stdout)["error"]
    here = subprocess.run([sys.executable, "-m", "tidal", "demo", "."], cwd=tmp_path / "mine", capture_output=True,
                          text=True, timeout=60)
    assert here.returncode == 2 and "is not empty" in here.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "my notes"
