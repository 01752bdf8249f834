"""How the loop's retrains ended, counted from its events: the one tally that the backtest, the demo and
their reports share, so that no retrain goes uncounted.

Every retrain the controller starts (a ``loop.retrain`` event) ends in exactly one outcome:

- promoted: the champion alias moved to its model, by the loop (``alias.moved``, not a rollback);
- rejected: its model failed the gate (``gate.failed``), lost its canary/shadow trial (``loop.trial_lost``),
  was abandoned there (``loop.trial_abandoned``), or was a model registered before (``loop.retrain_unchanged``);
- failed: the retrain itself broke (``loop.retrain_failed``, with the error's message);
- pending: its canary/shadow trial was still running when the events end (the caller knows: ``pending``).

So ``promotions + rejections + failures + pending == retrains``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tidal.core.entities import Event
from tidal.core.text import count
from tidal.registry import CHAMPION

#: The event kinds that end a retrain as a rejection.
REJECTED = ("gate.failed", "loop.trial_lost", "loop.trial_abandoned", "loop.retrain_unchanged")
#: The events a loop's story (a report's table, its chart's marks) shows: each start, and each outcome.
STORY = ("loop.retrain", "alias.moved", *REJECTED, "loop.retrain_failed", "loop.rollback")


def is_promotion(event: Event) -> bool:
    """A champion move made by the loop (a trial won, a direct promotion), not a rollback nor by hand."""
    data = event.data
    return (event.kind == "alias.moved" and data.get("alias") == CHAMPION and not data.get("rollback")
            and str(data.get("trigger", "")).startswith("loop"))


def tally(events: Iterable[Event], *, pending: int = 0) -> dict[str, Any]:
    """Count the loop's retrains over ``events`` (those of one span of the loop, oldest first) and how each
    ended: ``retrains``, ``promotions``, ``rejections``, ``failures``, ``pending``, ``rollbacks``, and
    ``first_failure`` (the first failed retrain's error message, None when none failed)."""
    out: dict[str, Any] = {"retrains": 0, "promotions": 0, "rejections": 0, "failures": 0, "pending": pending,
                           "rollbacks": 0, "first_failure": None}
    for e in events:
        if e.kind == "loop.retrain":
            out["retrains"] += 1
        elif is_promotion(e):
            out["promotions"] += 1
        elif e.kind in REJECTED:
            out["rejections"] += 1
        elif e.kind == "loop.retrain_failed":
            out["failures"] += 1
            if out["first_failure"] is None:
                out["first_failure"] = str(e.data.get("error") or e.message)
        elif e.kind == "loop.rollback":
            out["rollbacks"] += 1
    return out


def describe(loop: Mapping[str, Any]) -> str:
    """What the loop did, in words: ``3 retrains (1 promotion, 1 rejection, 1 failed), 0 rollbacks``; a
    retrain still on trial when the span ended reads ``1 on trial``. Reports written before failures were
    counted have no ``failures``: they read as 0."""
    ends = [count(int(loop.get("promotions", 0)), "promotion"), count(int(loop.get("rejections", 0)), "rejection"),
            f"{int(loop.get('failures', 0)):,} failed"]
    if loop.get("pending"):
        ends.append(f"{int(loop['pending']):,} on trial")
    return (f"{count(int(loop.get('retrains', 0)), 'retrain')} ({', '.join(ends)}), "
            f"{count(int(loop.get('rollbacks', 0)), 'rollback')}")


def failure_line(loop: Mapping[str, Any]) -> str | None:
    """One line when retrains failed: how many of how many, and the first one's error; None otherwise."""
    failures = int(loop.get("failures", 0) or 0)
    if not failures:
        return None
    retrains = int(loop.get("retrains", 0) or 0)
    share = "every retrain" if failures == retrains else f"{failures:,} of {count(retrains, 'retrain')}"
    return f"{share} failed; the first: {loop.get('first_failure') or 'no message'}"


def all_failed(loop: Mapping[str, Any]) -> bool:
    """Whether the loop retrained at least once and every retrain failed (``tidal backtest`` then fails)."""
    return int(loop.get("retrains", 0)) > 0 and int(loop.get("failures", 0)) == int(loop["retrains"])


__all__ = ["REJECTED", "STORY", "all_failed", "describe", "failure_line", "is_promotion", "tally"]
