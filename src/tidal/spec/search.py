"""``model.search``: a hyper-parameter search (Optuna) over some of the estimator's parameters.

Everything that can be checked without importing the estimator is checked here, while the file is read: a
space with no parameter, a range whose low end is above its high end, a log scale that starts at or below
0, a budget of 0 trials or 0 seconds. That a parameter is one the estimator takes is checked when the
search starts (:func:`tidal.train.search.check_space`), before any trial, because only then is the estimator
imported.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from tidal.spec.errors import show, spec_problem
from tidal.spec.section import Metric, Section

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_FIELD = {"int": "int_", "float": "float_", "choice": "choice"}


class ParamSpace(Section):
    """The values one parameter may take: ``{int: [low, high]}``, ``{float: [low, high], log: true}`` or
    ``{choice: [a, b, ...]}`` (bounds included)."""

    # named int_ and float_ (read as int and float), so that the class body does not hide the built-in types
    int_: list[int] | None = Field(None, alias="int", description="[low, high]: whole numbers from low to high")
    float_: list[float] | None = Field(None, alias="float", description="[low, high]: numbers from low to high")
    choice: list[Any] | None = Field(None, description="a list of the values to choose from")
    log: bool = Field(False, description="true or false: draw int or float on a log scale (low must be > 0)")
    step: float | None = Field(None, gt=0, description="a positive number: draw only low, low + step, ... (int "
                                                        "or float, without log)")

    @model_validator(mode="after")
    def _one_kind(self) -> ParamSpace:
        kinds = [k for k in ("int", "float", "choice") if getattr(self, _FIELD[k]) is not None]
        if len(kinds) != 1:
            raise spec_problem("search_param", f"{'no' if not kinds else ' and '.join(kinds)} given; expected "
                               "exactly one of int, float or choice",
                               hint="e.g. {int: [20, 200]}, {float: [0.01, 0.3], log: true} or {choice: [a, b]}")
        kind = kinds[0]
        if kind == "choice":
            if not self.choice:
                raise spec_problem("search_param", "an empty choice; expected at least one value",
                                   hint="list the values, e.g. {choice: [log_loss, exponential]}", at=("choice",))
            if self.log or self.step is not None:
                raise spec_problem("search_param", "log and step apply to int and float ranges only",
                                   hint="remove log and step from a choice", at=("choice",))
            return self
        bounds = getattr(self, _FIELD[kind])
        if len(bounds) != 2:
            raise spec_problem("search_range", f"{len(bounds)} values; expected [low, high]",
                               hint=f"e.g. {{{kind}: [1, 10]}}", at=(kind,))
        low, high = bounds
        if low > high:
            raise spec_problem("search_range", f"low {show(low)} is above high {show(high)}; expected low <= high",
                               hint=f"swap them: [{show(high)}, {show(low)}]", at=(kind,))
        if self.log and low <= 0:
            raise spec_problem("search_range", f"a log scale needs low > 0, got {show(low)}",
                               hint="raise low above 0, or remove log: true", at=(kind,))
        if self.log and self.step is not None:
            raise spec_problem("search_range", "log and step together; Optuna draws on one or the other",
                               hint="remove step or log", at=("step",))
        if kind == "int" and self.step is not None and self.step != round(self.step):
            raise spec_problem("search_range", f"step {show(self.step)} for an int range; expected a whole number",
                               hint="use a whole step, or a float range", at=("step",))
        return self

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # dumped (the spec digest, the study's name) with the keys as a user writes them: int and float
        return {{"int_": "int", "float_": "float"}.get(k, k): v for k, v in handler(self).items()}

    @property
    def kind(self) -> Literal["int", "float", "choice"]:
        """Which of int, float or choice this space is."""
        return "int" if self.int_ is not None else "float" if self.float_ is not None else "choice"

    @property
    def bounds(self) -> tuple[float, float]:
        """[low, high] of an int or float range."""
        values = self.int_ if self.int_ is not None else self.float_
        if values is None:
            raise ValueError("a choice has no bounds")
        return values[0], values[1]


def duration_seconds(value: str | float) -> float:
    """Seconds in ``value``: a number of seconds, or text like ``90s``, ``10m``, ``2h``, ``1d``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a duration")
    return float(match.group(1)) * _UNIT_S[match.group(2) or "s"]


class SearchSpec(Section):
    """A hyper-parameter search: the space, the budget, the metric, Optuna's sampler and pruner."""

    params: dict[str, ParamSpace] = Field(
        description="a mapping of parameter names to spaces, like {max_iter: {int: [20, 200]}}")
    trials: int | None = Field(None, description="a whole number of trials >= 1, or null (20 when time is "
                                                 "null too)")
    time: str | float | None = Field(None, description="a time budget, like 10m, 90s or 2h, or null")
    metric: Metric | None = Field(None, description="the metric to optimise, or null (the first gate's metric)")
    sampler: Literal["tpe", "random", "grid"] = Field("tpe", description="tpe, random or grid")
    pruner: Literal["median", "none"] = Field("median", description="median or none")

    @model_validator(mode="after")
    def _a_space_and_a_budget(self) -> SearchSpec:
        if not self.params:
            raise spec_problem("search_empty", "an empty search space; expected at least one parameter",
                               hint="e.g. params: {max_iter: {int: [20, 200]}}, or remove model.search",
                               at=("params",))
        if self.trials is not None and self.trials < 1:
            raise spec_problem("search_budget", f"{self.trials} trials; expected at least 1",
                               hint="set trials: to 1 or more, or remove model.search", at=("trials",))
        if self.time is not None:
            try:
                seconds = duration_seconds(self.time)
            except ValueError:
                raise spec_problem("search_budget", f"{show(self.time)} is not a duration; expected e.g. 10m, "
                                   "90s, 2h", hint="a number with s, m, h or d", at=("time",)) from None
            if seconds <= 0:
                raise spec_problem("search_budget", f"a time budget of {show(self.time)}; expected more than 0",
                                   hint="set time: to e.g. 10m, or remove it", at=("time",))
        if self.sampler == "grid":
            for name, space in self.params.items():
                if space.kind == "float" and space.step is None:
                    raise spec_problem("search_grid", "a grid cannot cover a float range without a step",
                                       hint="give it a step, a choice, or use sampler: tpe", at=("params", name))
        return self

    @property
    def budget_trials(self) -> int | None:
        """The number of trials to reach: ``trials``, or 20 when neither trials nor time is given."""
        return self.trials if self.trials is not None else (20 if self.time is None else None)

    @property
    def budget_seconds(self) -> float | None:
        """The time budget in seconds, or None."""
        return None if self.time is None else duration_seconds(self.time)


__all__ = ["ParamSpace", "SearchSpec", "duration_seconds"]
