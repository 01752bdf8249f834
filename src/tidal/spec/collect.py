"""How rows are collected and which of them train: ``data.incremental`` (collect only the rows past a watermark,
from a SQL source), ``data.window`` (train on all rows, the newest N, or the last N days) and ``data.collect``
(``tidal loop`` polls the source on a schedule: :mod:`tidal.loop.collection`).

``data.window`` has the shape of ``retrain.window`` (:class:`tidal.spec.policy.WindowSpec`): ``all``, or
``{last_rows: N}``, ``{last_days: D}`` or both. docs/spec.md documents the keys (sections "Incremental SQL"
and "The loop collects").
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

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


class CollectSpec(Section):
    """When ``tidal loop`` collects from the source: every ``every`` (a duration) or at each time of ``cron``.

    ``collect: 10m`` is short for ``{every: 10m}`` and ``collect: "*/10 * * * *"`` for ``{cron: ...}``."""

    every: NonEmpty | None = Field(None, description="a duration ('30s', '10m', '1h', '1d'), or null")
    cron: NonEmpty | None = Field(None, description="a cron expression such as '*/10 * * * *', or null")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"every": data} if _DURATION.match(data) else {"cron": data}
        return data

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            seconds = duration_seconds(value)
        except ValueError:
            raise spec_problem("bad_duration", f"{show(value)} is not a duration; expected a number and a unit "
                               "(s, m, h, d or w)", hint="e.g. collect: {every: 10m}") from None
        if seconds <= 0:
            raise spec_problem("bad_duration", f"{show(value)} is no time at all; expected a duration longer than "
                               "zero", hint="e.g. collect: {every: 10m}")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from croniter import croniter

        if not croniter.is_valid(value):
            raise spec_problem("bad_cron", f"{value!r} is neither a duration nor a cron expression; expected a "
                               "duration (10m) or five cron fields (minute hour day month weekday)",
                               hint="e.g. collect: {every: 10m} or collect: {cron: '*/10 * * * *'}")
        return value

    @model_validator(mode="after")
    def _one(self) -> CollectSpec:
        if (self.every is None) == (self.cron is None):
            which = "both" if self.every is not None else "neither"
            raise spec_problem("collect_schedule", f"collect needs one schedule, every or cron; {which} given",
                               hint="e.g. collect: {every: 10m} or collect: {cron: '*/10 * * * *'}")
        return self

    @property
    def seconds(self) -> float | None:
        """``every`` in seconds (None for a cron schedule)."""
        return None if self.every is None else duration_seconds(self.every)


__all__ = ["CollectSpec", "IncrementalSpec", "duration_seconds"]
