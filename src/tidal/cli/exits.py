"""The exit codes of the ``tidal`` command, in one table.

Scripts branch on these, so a code keeps its meaning once published. ``tidal --help`` prints the table,
and README's "Exit codes" section mirrors it (a test checks that the two agree).
"""

from __future__ import annotations

#: The command did what it was asked.
DONE = 0
#: A bug in tidal, not a mistake of the user: the message says to re-run with ``--debug``.
INTERNAL = 1
#: A mistake in the spec, the data or the command line: the one-line error says what and how to fix it.
MISTAKE = 2
#: ``tidal run`` trained a model that failed its gate: it is registered as rejected, the champion stays.
GATE_FAILED = 3
#: ``tidal predictions check`` found unreadable predictions and left them in place.
UNREADABLE_PREDICTIONS = 4
#: ``tidal loop --once`` did nothing: another controller holds the lease.
LEASE_HELD = 5
#: ``tidal backtest``: the loop retrained, and every retrain failed (the line on stderr gives the first error);
#: ``tidal loop --once``: the retrain this tick started failed (its output and event say why).
RETRAINS_FAILED = 6
#: ``tidal loop --once``: the collection this tick made (``data.collect``) failed or its batch was rejected.
COLLECT_FAILED = 7
#: Stopped by Ctrl-C; stopped by signal N (SIGTERM, SIGHUP) exits 128 + N, as shells report it.
INTERRUPTED = 130

#: (code, meaning) for each code, in order: the one table that help and README show.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (DONE, "done"),
    (INTERNAL, "internal error (a bug in tidal: --debug shows the traceback)"),
    (MISTAKE, "a mistake in the spec, the data or the command"),
    (GATE_FAILED, "tidal run: the model failed its gate (registered as rejected; the champion stays)"),
    (UNREADABLE_PREDICTIONS, "tidal predictions check: unreadable predictions left in place"),
    (LEASE_HELD, "tidal loop --once: another controller holds the lease; nothing done"),
    (RETRAINS_FAILED, "tidal backtest: every retrain of the loop failed (the first failure says why); "
                      "tidal loop --once: this tick's retrain failed"),
    (COLLECT_FAILED, "tidal loop --once: this tick's collection failed, or its batch was rejected (the event "
                     "says why)"),
    (INTERRUPTED, "interrupted by Ctrl-C (stopped by signal N: 128 + N, e.g. 143 for SIGTERM)"),
)


def help_epilog() -> str:
    """The exit-code table as the epilog of ``tidal --help`` (``\\b`` keeps click from re-wrapping it)."""
    return "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES)


__all__ = ["COLLECT_FAILED", "DONE", "EXIT_CODES", "GATE_FAILED", "INTERNAL", "INTERRUPTED", "LEASE_HELD", "MISTAKE",
           "RETRAINS_FAILED", "UNREADABLE_PREDICTIONS", "help_epilog"]
