"""How rows are collected and which of them train: ``data.incremental`` (collect only the rows past a watermark,
from a SQL source) and ``data.window`` (train on all rows, the newest N, or the last N days).

``data.window`` has the shape of ``retrain.window`` (:class:`tidal.spec.policy.WindowSpec`): ``all``, or
``{last_rows: N}``, ``{last_days: D}`` or both. docs/spec.md documents the keys (section "Incremental SQL").
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from tidal.spec.errors import show, spec_problem
from tidal.spec.section import NonEmpty, Section

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def duration_seconds(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``, ``"1w"`` in seconds; ValueError for anything else."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class IncrementalSpec(Section):
    """Collect only the rows whose ``column`` is past the last collection's watermark (SQL sources only)."""

    column: NonEmpty = Field(description="the name of the column that grows with new and updated rows: a "
                                         "timestamp (updated_at) or an increasing number (an id)")
    key: NonEmpty | None = Field(
        None, description="the name of the row key column, or null: a row collected again with the same key "
                          "replaces the older one (null: only identical rows are dropped)")
    lookback: int | float | str | None = Field(
        None, description="a duration ('30s', '15m', '1h', '2d', '1w') for a time column, or a number for a numeric "
                          "one: re-read this far behind the watermark, to catch rows written late; or null")

    @field_validator("lookback", mode="before")
    @classmethod
    def _no_bool(cls, value: object) -> object:
        if isinstance(value, bool):  # YAML's yes/true would pass as 1
            raise spec_problem("bad_lookback", f"{show(value)} is not a lookback; expected a duration or a number",
                               hint="e.g. lookback: 1h, or remove it")
        return value

    @field_validator("lookback")
    @classmethod
    def _lookback(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, str):
            try:
                duration_seconds(value)
            except ValueError:
                raise spec_problem("bad_duration", f"{show(value)} is not a duration; expected a number and a unit "
                                   "(s, m, h, d or w)", hint="e.g. lookback: 1h") from None
        elif value is not None and (value != value or value < 0 or value == float("inf")):
            raise spec_problem("bad_lookback", f"{show(value)} is not a lookback; expected a number >= 0",
                               hint="e.g. lookback: 100 for an id column, lookback: 1h for a time column")
        return value


__all__ = ["IncrementalSpec", "duration_seconds"]
