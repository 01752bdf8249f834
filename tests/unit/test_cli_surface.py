"""What the ``tidal`` command shows, checked in process (issue #10, point 0): help without ``<bool>`` after
flags and with a line for every option, one exit-code table shared by help and README, an internal error
that says how to see more, counts in the right number, the demo's folder rule and its story's rows."""

from __future__ import annotations

import json
import re
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer

from tidal.cli import exits
from tidal.cli.app import app
from tidal.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def _commands() -> list[tuple[str, Any]]:
    """Every command of the tree, with its path (``tidal runs ls``)."""
    out: list[tuple[str, Any]] = []

    def walk(path: str, command: Any) -> None:
        out.append((path, command))
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(f"{path} {name}", sub)

    walk("tidal", typer.main.get_command(app))
    return out


def test_every_option_has_help_and_no_flag_shows_a_type(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _commands()
    assert len(commands) > 15
    for path, command in commands:
        for param in command.params:
            if param.param_type_name == "option":
                assert (param.help or "").strip(), f"{path} {param.opts[0]} has no help"
            if param.param_type_name == "argument" and not getattr(command, "commands", None):
                assert (getattr(param, "help", "") or "").strip(), f"{path} {param.name} has no help"
        assert main([*path.split()[1:], "--help"]) == 0
        shown = capsys.readouterr().out
        assert "<bool>" not in shown, f"{path} --help:\n{shown}"
        for flag in ("--json", "--explain", "--once", "--force", "--quarantine", "--take-over"):
            if f"{flag} " in shown:  # a flag is followed by its help, never by a value's type
                assert re.search(rf"{flag}\s{{2,}}\S", shown), f"{path}: {flag}\n{shown}"


def test_the_exit_codes_are_one_table_in_help_and_readme(capsys: pytest.CaptureFixture[str]) -> None:
    codes = [code for code, _ in exits.EXIT_CODES]
    assert codes == [0, 1, 2, 3, 4, 5, 6, 7, 130] and exits.GATE_FAILED == 3 and exits.RETRAINS_FAILED == 6
    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    for code, meaning in exits.EXIT_CODES:
        assert re.search(rf"^\s+{code}\s+{re.escape(meaning)}$", shown, re.MULTILINE), (code, shown)
    readme = (REPO / "README.md").read_text()
    table = re.findall(r"^\| (\d+) \| (.+?) \|$", readme.split("### Exit codes", 1)[1], re.MULTILINE)
    assert [(int(c), m) for c, m in table] == list(exits.EXIT_CODES)


def test_an_internal_error_says_to_rerun_with_debug(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from tidal.workspace import Workspace

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the store fell over")

    monkeypatch.setattr(Workspace, "open", broken)
    assert main(["events"]) == exits.INTERNAL
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.strip() == ("error: internal error (RuntimeError: the store fell over) — re-run with --debug for "
                               "the traceback and report it")
    assert main(["events", "--json"]) == exits.INTERNAL
    body = json.loads(capsys.readouterr().out)
    assert body == {"error": "internal error (RuntimeError: the store fell over)",
                    "hint": "re-run with --debug for the traceback and report it"}
    with pytest.raises(RuntimeError, match="fell over"):
        main(["events", "--debug"])


def test_count_and_the_backtest_tables_use_the_right_number() -> None:
    from rich.console import Console

    from tidal.cli.render import backtest_table
    from tidal.core.text import count
    from tidal.loop.backtest import BacktestResult

    assert [count(n, "rejection") for n in (0, 1, 2, 1000)] == ["0 rejections", "1 rejection", "2 rejections",
                                                                 "1,000 rejections"]
    assert count(1, "batch", "batches") == "1 batch" and count(3, "batch", "batches") == "3 batches"
    result = BacktestResult(metric="accuracy", rows=1, initial_rows=1,
                            loop={"score": 0.8, "retrains": 3, "promotions": 1, "rejections": 1, "failures": 1,
                                  "pending": 0, "rollbacks": 1, "first_failure": "training failed: boom"},
                            static={"score": 0.7}, periodic={"score": 0.75, "every": 1, "retrains": 1},
                            last_label={"score": 0.6})
    console = Console(width=200, record=True)
    console.print(backtest_table(result))
    text = console.export_text()
    assert "3 retrains (1 promotion, 1 rejection, 1 failed), 1 rollback" in text, text
    assert "every 1 row (1 retrain)" in text and "1 row after 1 initial row" in text
    # a failed retrain is a line of its own under the table, with the first error
    assert "loop: 1 of 3 retrains failed; the first: training failed: boom" in text, text
    result.loop.update(retrains=1, promotions=0, rejections=0, failures=0, pending=1, rollbacks=0, first_failure=None)
    console = Console(width=200, record=True)
    console.print(backtest_table(result))
    text = console.export_text()
    assert "1 retrain (0 promotions, 0 rejections, 0 failed, 1 on trial), 0 rollbacks" in text, text
    assert "loop:" not in text


def test_the_live_demo_page_has_no_periodic_row_and_places_events(tmp_path: Path) -> None:
    from tidal.loop.backtest import BacktestResult
    from tidal.loop.backtest_html import render_backtest_html

    story = [{"row": 1500, "kind": "loop.retrain", "message": "retrain triggered by drift"},
             {"row": 1500, "kind": "alias.moved", "message": "champion of elec2: 1 → 2"}]
    result = BacktestResult(metric="accuracy", rows=4000, initial_rows=1000,
                            loop={"score": 0.8, "retrains": 1, "promotions": 1, "rejections": 0, "rollbacks": 0},
                            static={"score": 0.7}, periodic={}, last_label={"score": 0.6},
                            curves={"loop": [0.8, 0.8], "static": [0.7, 0.7], "last_label": [0.6, 0.6]},
                            curve_rows=[2000, 4000], events=story)
    page = render_backtest_html(result, tmp_path / "loop.html").read_text()
    assert "periodic" not in page.split("<h2>")[0] and "nan" not in page and "every 0" not in page
    assert "<tr><td>1,500</td><td>loop.retrain</td>" in page and "<tr><td>1,500</td><td>alias.moved</td>" in page
    assert "1 retrain (1 promotion, 0 rejections, 0 failed), 0 rollbacks" in page and "Failed retrains" not in page


def test_the_demo_places_each_event_at_the_row_of_its_tick() -> None:
    from tidal.cli.demo import _tick
    from tidal.core.entities import Event
    from tidal.loop.outcomes import tally

    now = datetime(2026, 1, 1, tzinfo=UTC)
    stored: list[Event] = []

    def event(kind: str) -> Event:
        e = Event(kind=kind, subject="model:elec2:2", time=now, message=kind, id=len(stored) + 1)
        stored.append(e)
        return e

    class Controller:
        def tick(self) -> Any:
            # a retrain: the controller's own event, then those the retrain's run records itself
            own = [event("loop.retrain")]
            event("gate.passed")
            event("alias.moved")
            return SimpleNamespace(drift_share=0.6, champion=2, events=own)

    class Failing:
        def tick(self) -> Any:
            own = [event("loop.retrain"), event("loop.retrain_failed")]
            return SimpleNamespace(drift_share=0.6, champion=2, events=own)

    ws = SimpleNamespace(events=lambda limit: stored[-limit:])
    state: dict[str, Any] = {"ticks": 0, "retrains": 0, "story": [], "last_event": 0}
    _tick(Controller(), ws, state, deque(), row=1500)
    _tick(Controller(), ws, state, deque(), row=2000)
    _tick(Failing(), ws, state, deque(), row=2500)
    assert [(s["row"], s["kind"]) for s in state["story"]] == [
        (1500, "loop.retrain"), (1500, "alias.moved"), (2000, "loop.retrain"), (2000, "alias.moved"),
        (2500, "loop.retrain"), (2500, "loop.retrain_failed")]
    assert state["retrains"] == 3 and state["ticks"] == 3 and state["failures"] == 1
    assert {k: v for k, v in tally(state["outcomes"]).items() if k != "first_failure"} == {
        "retrains": 3, "promotions": 0, "rejections": 0, "failures": 1, "pending": 0, "rollbacks": 0}
    assert state["drift_rows"] == [1500, 2000, 2500] and state["drift_shares"] == [0.6, 0.6, 0.6]


def test_the_demo_takes_only_a_folder_it_made(tmp_path: Path) -> None:
    from tidal.cli.demo import MARKER, claim_folder
    from tidal.core.errors import TidalError

    fresh = tmp_path / "fresh"
    claim_folder(fresh)  # a new folder
    assert sorted(p.name for p in fresh.iterdir()) == [MARKER]
    (fresh / "tidal.yaml").write_text("old demo")
    (fresh / ".tidal").mkdir()
    (fresh / ".tidal" / "tidal.db").write_text("old")
    claim_folder(fresh)  # an earlier demo's: cleared
    assert sorted(p.name for p in fresh.iterdir()) == [MARKER]

    (fresh / "notes.txt").write_text("mine")
    with pytest.raises(TidalError, match=r"holds files an earlier tidal demo did not make \(notes.txt\)"):
        claim_folder(fresh)
    assert (fresh / "notes.txt").read_text() == "mine" and (fresh / MARKER).is_file()

    older = tmp_path / "older"  # made by a tidal demo that wrote no marker file yet
    (older / "data").mkdir(parents=True)
    (older / "tidal.yaml").write_text("retrain:\n  max_per_day: 1000   # the demo compresses years into minutes\n")
    (older / "server.log").write_text("")
    claim_folder(older)
    assert sorted(p.name for p in older.iterdir()) == [MARKER]
    (tmp_path / "lookalike").mkdir()
    (tmp_path / "lookalike" / "tidal.yaml").write_text("name: mine\n")  # a project of the user's
    with pytest.raises(TidalError, match="is not empty"):
        claim_folder(tmp_path / "lookalike")
    assert (tmp_path / "lookalike" / "tidal.yaml").read_text() == "name: mine\n"

    empty = tmp_path / "empty"
    empty.mkdir()
    claim_folder(empty)
    assert (empty / MARKER).is_file()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(TidalError, match="is a file, not a folder"):
        claim_folder(a_file)
    assert a_file.read_text() == "x"


def test_click_is_found_whichever_typer_uses() -> None:
    from tidal.cli.main import _CLICK_ERROR

    assert issubclass(typer.BadParameter, _CLICK_ERROR)
    assert _CLICK_ERROR.__name__ == "ClickException"
