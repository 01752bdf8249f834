"""Validation gates: the conditions a new model must meet before it may be promoted.

A gate is written as one line of text in ``validate.gates`` and parsed into a :class:`Gate`::

    accuracy >= 0.70                  absolute: the candidate's accuracy must be at least 0.70
    roc_auc >= champion - 0.01        relative: at most 0.01 below the serving champion's roc_auc
    rmse <= champion * 1.05           ratio: at most 5% above the champion's rmse

The operator is one of ``>=``, ``>``, ``<=``, ``<``. A gate that names the champion passes while there
is no champion yet. :meth:`Gate.check` returns the verdict with a sentence that explains it.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_serializer,
    model_validator,
)

from tidal.core.errors import SpecError
from tidal.spec.errors import closest, show, spec_problem
from tidal.spec.metrics import KNOWN_METRICS

Op = Literal[">=", ">", "<=", "<"]
Kind = Literal["absolute", "relative", "ratio"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_GATE = re.compile(r"\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>>=|<=|>|<)\s*(?P<rhs>.*?)\s*")
_ABSOLUTE = re.compile(rf"(?P<num>[+-]?{_NUMBER})")
_RELATIVE = re.compile(rf"champion(?:\s*(?P<sign>[+-])\s*(?P<num>{_NUMBER}))?")
_RATIO = re.compile(rf"champion\s*\*\s*(?P<num>{_NUMBER})")

FORMS = "'metric >= 0.70', 'metric >= champion - 0.01' or 'metric <= champion * 1.05' (op: >=, >, <=, <)"
"""The accepted forms, as shown in error messages."""


class GateSyntaxError(SpecError):
    """A gate's text cannot be read; ``kind`` is ``gate_syntax`` or ``unknown_metric``."""

    def __init__(self, kind: str, message: str, hint: str | None) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind


def _syntax_hint(text: str) -> str:
    for wrong, right in (("=>", ">="), ("=<", "<="), ("≥", ">="), ("≤", "<=")):
        if wrong in text:
            return f"write {right!r} instead of {wrong!r}"
    if "==" in text or "=" in text.replace(">=", "").replace("<=", ""):
        return "a gate compares with >=, >, <= or <, never ="
    return "e.g. accuracy >= 0.70 or roc_auc >= champion - 0.01"


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise GateSyntaxError("gate_syntax", f"the number {text!r} is too large", "use a smaller number")
    return value


def parse_gate(text: str) -> Gate:
    """Read one gate; raises :class:`GateSyntaxError` with a message and a fix."""
    match = _GATE.fullmatch(text)
    if match is None:
        raise GateSyntaxError(
            "gate_syntax", f"could not read the gate {show(text)}; expected {FORMS}", _syntax_hint(text)
        )
    metric, op, rhs = match["metric"], match["op"], match["rhs"]
    if metric not in KNOWN_METRICS:
        near = closest(metric, KNOWN_METRICS)
        raise GateSyntaxError(
            "unknown_metric",
            f"unknown metric {metric!r} in the gate {show(text)}; expected one of {', '.join(KNOWN_METRICS)}",
            f"did you mean {near!r}?" if near else "use one of the known metrics",
        )
    kind: Kind
    if m := _ABSOLUTE.fullmatch(rhs):
        kind, value = "absolute", _number(m["num"])
    elif m := _RELATIVE.fullmatch(rhs):
        number = _number(m["num"]) if m["num"] else 0.0
        kind, value = "relative", -number if m["sign"] == "-" else number
    elif m := _RATIO.fullmatch(rhs):
        kind, value = "ratio", _number(m["num"])
        if value <= 0:
            raise GateSyntaxError("gate_syntax", f"the ratio in the gate {show(text)} must be above 0",
                                  "e.g. rmse <= champion * 1.05")
    else:
        raise GateSyntaxError(
            "gate_syntax",
            f"could not read the right side {show(rhs)} of the gate {show(text)}; expected {FORMS}",
            _syntax_hint(text) if "=" in rhs or "<" in rhs or ">" in rhs
            else "the right side is a number, champion, champion ± a number, or champion * a number",
        )
    gate = Gate(metric=metric, op=cast(Op, op), kind=kind, value=value)
    gate._text = text.strip()
    return gate


def gate_from_yaml(value: Any) -> Gate:
    """The validator of one ``validate.gates`` item: text is parsed, a :class:`Gate` passes."""
    if isinstance(value, Gate):
        return value
    if not isinstance(value, str):
        raise spec_problem(
            "gate_type",
            f"expected a gate written as text, like 'accuracy >= 0.70', got {show(value)}",
            hint="write each gate as one line of text: - accuracy >= 0.70",
        )
    try:
        return parse_gate(value)
    except GateSyntaxError as exc:
        raise spec_problem(exc.kind, exc.message, hint=exc.hint) from None


def _fmt(x: float, digits: int) -> str:
    if x == 0 or 1e-3 <= abs(x) < 1e9:
        return f"{x:.{digits}f}"
    return f"{x:.{digits}g}"


def _number_text(x: float) -> str:
    return repr(float(x))


class Gate(BaseModel):
    """One condition on a metric of the candidate model.

    ``kind`` says what ``value`` is: the threshold itself (``absolute``), an offset added to the
    champion's metric (``relative``; ``-0.01`` for ``champion - 0.01``), or a factor it is multiplied by
    (``ratio``). Gates compare equal on these four fields; ``str()`` gives back the text as written.
    It dumps (``model_dump``) as its canonical text, so a spec's digest ignores how numbers were written.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    op: Op
    kind: Kind = "absolute"
    value: float = Field(allow_inf_nan=False)
    _text: str | None = PrivateAttr(default=None)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in KNOWN_METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(KNOWN_METRICS)}")
        return metric

    @model_validator(mode="after")
    def _positive_ratio(self) -> Gate:
        if self.kind == "ratio" and self.value <= 0:
            raise ValueError("a ratio gate needs a factor above 0")
        return self

    @classmethod
    def parse(cls, text: str) -> Gate:
        """Read a gate such as ``"roc_auc >= champion - 0.01"``; raises :class:`SpecError` if it cannot."""
        try:
            return parse_gate(text)
        except GateSyntaxError as exc:
            raise SpecError(exc.message, hint=exc.hint) from None

    @property
    def canonical(self) -> str:
        """The gate's text in one standard spelling (numbers as Python writes them)."""
        if self.kind == "absolute":
            rhs = _number_text(self.value)
        elif self.kind == "ratio":
            rhs = f"champion * {_number_text(self.value)}"
        elif self.value == 0:
            rhs = "champion"
        else:
            rhs = f"champion {'-' if self.value < 0 else '+'} {_number_text(abs(self.value))}"
        return f"{self.metric} {self.op} {rhs}"

    def without_tolerance(self) -> Gate:
        """This gate with no slack in the champion's favour: ``accuracy >= champion - 0.02`` becomes
        ``accuracy >= champion``, ``rmse <= champion * 1.02`` becomes ``rmse <= champion``; a gate that
        already asks for an improvement, or names no champion, is itself."""
        if self.kind == "relative" and ((self.op in (">=", ">") and self.value < 0)
                                        or (self.op in ("<=", "<") and self.value > 0)):
            return Gate(metric=self.metric, op=self.op, kind="relative", value=0.0)
        if self.kind == "ratio" and ((self.op in ("<=", "<") and self.value > 1)
                                     or (self.op in (">=", ">") and self.value < 1)):
            return Gate(metric=self.metric, op=self.op, kind="relative", value=0.0)
        return self

    def threshold(self, champion: float | None = None) -> float | None:
        """The value the candidate is compared with; ``None`` for a champion gate without a champion."""
        if self.kind == "absolute":
            return self.value
        if champion is None or math.isnan(champion):
            return None
        return champion + self.value if self.kind == "relative" else champion * self.value

    def check(self, candidate: float, champion: float | None = None, *,
              no_champion: str = "no champion yet") -> tuple[bool, str]:
        """Whether ``candidate`` (the new model's metric) passes, and a sentence that says why.

        ``champion`` is the serving model's value of the same metric on the same data, or ``None``; then a
        gate that names the champion passes, and ``no_champion`` says why there is no value to compare.
        A threshold within a relative 1e-9 of the candidate counts as equal (float noise, e.g. in
        ``0.93 - 0.01``). A candidate that is not a number fails.
        """
        if math.isnan(candidate):
            return False, f"{self.metric} is not a number (nan): failed"
        limit = self.threshold(champion)
        if limit is None:
            return True, f"{self.metric} {_fmt(candidate, 3)} {self.op} champion: {no_champion}, passed"
        if math.isclose(candidate, limit, rel_tol=1e-9, abs_tol=1e-12):
            ok = self.op in (">=", "<=")
        else:
            ok = _OPS[self.op](candidate, limit)
        digits = 3
        while digits < 12 and candidate != limit and _fmt(candidate, digits) == _fmt(limit, digits):
            digits += 1

        def f(x: float) -> str:
            return _fmt(x, digits)

        if self.kind == "absolute" or champion is None:
            rhs = f(limit)
        elif self.kind == "ratio":
            rhs = f"champion {f(champion)} * {f(self.value)} = {f(limit)}"
        elif self.value == 0:
            rhs = f"champion {f(champion)}"
        else:
            sign = "-" if self.value < 0 else "+"
            rhs = f"champion {f(champion)} {sign} {f(abs(self.value))} = {f(limit)}"
        return ok, f"{self.metric} {f(candidate)} {self.op} {rhs}: {'passed' if ok else 'failed'}"

    @model_serializer(mode="plain")
    def _dump(self) -> str:
        return self.canonical

    def __str__(self) -> str:
        return self._text or self.canonical

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Gate):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[str, str, str, float]:
        return (self.metric, self.op, self.kind, self.value)
