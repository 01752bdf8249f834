"""The ``tidal`` command. It parses, calls :class:`tidal.Workspace`, and renders; nothing else.

A :class:`~tidal.core.errors.TidalError` becomes one line on stderr (with ``--json``, also
``{"error", "hint"}`` on stdout) and the exit code of its kind (:mod:`tidal.cli.exits`); ``--debug``,
before or after the command, shows the traceback instead.
"""

from __future__ import annotations

import sys

import typer

from tidal.cli import (
    exits,
    project,  # noqa: F401 - registers its commands: the pipeline and the registry, listed first
)

# isort: split
from tidal.cli import (
    alerts,  # noqa: F401 - registers tidal alerts test
    archive,  # noqa: F401 - registers tidal predictions archive and ls
    data,  # noqa: F401 - registers tidal snapshots ls and show
    operate,  # noqa: F401 - registers its commands: the model in service
    web,  # noqa: F401 - registers tidal tokens and tidal ui
)
from tidal.cli.app import app, err, state
from tidal.cli.failures import Terminated, exit_code_for, report_failure
from tidal.core.errors import TidalError

# The click in use (typer's own copy in recent typer, the click package before): found from a class typer
# exports, so that usage errors are caught whichever it is.
_CLICK_ERROR: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _split_flags(args: list[str]) -> tuple[list[str], bool, bool]:
    """``args`` without ``--debug`` (accepted anywhere before ``--``, so ``tidal backtest --debug`` works),
    whether it was given, and whether ``--json`` was."""
    end = args.index("--") if "--" in args else len(args)
    head, tail = args[:end], args[end:]
    return [a for a in head if a != "--debug"] + tail, "--debug" in head, "--json" in head


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tidal`` script; returns the exit code."""
    args, debug, json_mode = _split_flags(list(sys.argv[1:] if argv is None else argv))
    state.update(debug=debug)
    try:
        code = typer.main.get_command(app).main(args=args, prog_name="tidal", standalone_mode=False)
    except _CLICK_ERROR as exc:  # a usage mistake: unknown option, missing argument, bad value
        return _usage_error(exc, json_mode)
    except TidalError as exc:
        if state["debug"]:
            raise
        report_failure(err, exc.message, exc.hint, json_mode=json_mode)
        return exit_code_for(exc)
    except (typer.Abort, KeyboardInterrupt):  # Ctrl-C (typer turns most into exit code 130 itself)
        report_failure(err, "interrupted", None, json_mode=json_mode)
        return exits.INTERRUPTED
    except Terminated as exc:
        report_failure(err, f"stopped by {exc}", None, json_mode=json_mode)
        return 128 + exc.signum
    except Exception as exc:  # a bug in tidal, not a user mistake: still one line, with the way to see more
        if state["debug"]:
            raise
        report_failure(err, f"internal error ({type(exc).__name__}: {exc})",
                       "re-run with --debug for the traceback and report it", json_mode=json_mode)
        return exits.INTERNAL
    return code if isinstance(code, int) else exits.DONE


def _usage_error(exc: Exception, json_mode: bool) -> int:
    code = int(getattr(exc, "exit_code", exits.MISTAKE))
    if type(exc).__name__ == "NoArgsIsHelpError":  # `tidal runs` alone: the help is the answer
        exc.show()  # type: ignore[attr-defined]
        return code
    ctx = getattr(exc, "ctx", None)
    hint = f"see `{ctx.command_path} --help`" if ctx is not None else "see `tidal --help`"
    report_failure(err, exc.format_message(), hint, json_mode=json_mode)  # type: ignore[attr-defined]
    return code


if __name__ == "__main__":
    sys.exit(main())
