"""Durations as people write them in tidal.yaml and on the command line: ``90d``, ``12h``, ``30m``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: What a duration looks like, for messages.
DURATION_HINT = "a number and a unit: 90d (days), 12h (hours), 30m (minutes), 2w (weeks), 45s (seconds)"


def parse_duration(text: str) -> timedelta:
    """``text`` (``90d``, ``1.5h``) as a timedelta; ValueError saying what is wrong (see :data:`DURATION_HINT`
    for what to write) when it is not one or is not longer than zero."""
    m = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"{text!r} is not a duration")
    delta = timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    if delta <= timedelta(0):
        raise ValueError(f"{text!r} is not longer than zero")
    return delta


__all__ = ["DURATION_HINT", "parse_duration"]
