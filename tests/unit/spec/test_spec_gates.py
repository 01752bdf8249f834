"""Gates: parsed from one line of text, checked against a candidate and the champion, explained."""

from __future__ import annotations

import math
import operator

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tidal.core.errors import SpecError
from tidal.spec import KNOWN_METRICS, Gate

PARSED = {
    "accuracy >= 0.70": ("accuracy", ">=", "absolute", 0.70),
    "roc_auc >= champion - 0.01": ("roc_auc", ">=", "relative", -0.01),
    "roc_auc >= champion + 0.01": ("roc_auc", ">=", "relative", 0.01),
    "f1 > champion": ("f1", ">", "relative", 0.0),
    "rmse <= champion * 1.05": ("rmse", "<=", "ratio", 1.05),
    "log_loss < 0.5": ("log_loss", "<", "absolute", 0.5),
    "r2>=-0.5": ("r2", ">=", "absolute", -0.5),
    "  mae<=champion*2  ": ("mae", "<=", "ratio", 2.0),
    "mae <= 1e-3": ("mae", "<=", "absolute", 0.001),
    "balanced_accuracy >= .5": ("balanced_accuracy", ">=", "absolute", 0.5),
    "accuracy >= 1": ("accuracy", ">=", "absolute", 1.0),
}


@pytest.mark.parametrize("text, fields", PARSED.items(), ids=PARSED.keys())
def test_parse(text: str, fields: tuple[str, str, str, float]) -> None:
    gate = Gate.parse(text)
    metric, op, kind, value = fields
    assert gate == Gate(metric=metric, op=op, kind=kind, value=value)
    assert str(gate) == text.strip()


def test_str_is_the_text_as_written_and_the_dump_is_canonical() -> None:
    gate = Gate.parse("accuracy >= 0.70")
    assert str(gate) == "accuracy >= 0.70"
    assert gate.canonical == "accuracy >= 0.7"
    assert gate.model_dump() == "accuracy >= 0.7" and gate.model_dump(mode="json") == "accuracy >= 0.7"
    assert str(Gate(metric="roc_auc", op=">=", kind="relative", value=-0.01)) == "roc_auc >= champion - 0.01"
    assert gate == Gate.parse("accuracy>=0.7") and hash(gate) == hash(Gate.parse("accuracy>=0.7"))


BAD = {
    "accuracy => 0.7": "write '>=' instead of '=>'",
    "accuracy == 0.7": "never =",
    "accuracy = 0.7": "never =",
    "accuracy ≥ 0.7": "write '>=' instead of '≥'",
    "accuracy 0.7": "could not read the gate",
    "": "could not read the gate",
    "accuracy >= champ - 0.01": "could not read the right side 'champ - 0.01'",
    "accuracy >= champion - -0.01": "could not read the right side",
    "rmse <= champion * 0": "must be above 0",
    "rmse <= champion * -1": "could not read the right side",
    "accuracy >= 1e999": "too large",
    "auc >= 0.7": "unknown metric 'auc'",
    "acuracy >= 0.7": "did you mean 'accuracy'?",
}


@pytest.mark.parametrize("text, part", BAD.items(), ids=list(BAD))
def test_parse_errors(text: str, part: str) -> None:
    with pytest.raises(SpecError) as info:
        Gate.parse(text)
    message = str(info.value)
    assert part in message and "\n" not in message
    if "could not read" in message:  # the accepted forms are shown
        assert "'metric >= 0.70', 'metric >= champion - 0.01' or 'metric <= champion * 1.05'" in message


def test_the_constructor_validates_too() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        Gate(metric="auc", op=">=", value=0.5)
    with pytest.raises(ValueError, match="ratio"):
        Gate(metric="rmse", op="<=", kind="ratio", value=0)
    with pytest.raises(ValueError):
        Gate(metric="rmse", op="=", value=1)


# -- checking -----------------------------------------------------------------------------------------


def test_absolute() -> None:
    gate = Gate.parse("accuracy >= 0.70")
    assert gate.check(0.75) == (True, "accuracy 0.750 >= 0.700: passed")
    assert gate.check(0.65, champion=0.99) == (False, "accuracy 0.650 >= 0.700: failed")
    assert gate.threshold() == 0.70


def test_relative() -> None:
    gate = Gate.parse("roc_auc >= champion - 0.01")
    assert gate.check(0.912, 0.930) == (False, "roc_auc 0.912 >= champion 0.930 - 0.010 = 0.920: failed")
    assert gate.check(0.925, 0.930) == (True, "roc_auc 0.925 >= champion 0.930 - 0.010 = 0.920: passed")
    assert Gate.parse("f1 > champion").check(0.8, 0.7) == (True, "f1 0.800 > champion 0.700: passed")
    assert Gate.parse("f1 > champion + 0.05").check(0.8, 0.7)[1] == (
        "f1 0.800 > champion 0.700 + 0.050 = 0.750: passed"
    )


def test_relative_without_a_champion_passes() -> None:
    ok, reason = Gate.parse("roc_auc >= champion - 0.01").check(0.5, None)
    assert ok and "no champion yet" in reason
    assert Gate.parse("rmse <= champion * 1.05").check(9.0, math.nan)[0]


def test_ratio() -> None:
    gate = Gate.parse("rmse <= champion * 1.05")
    assert gate.check(1.2, 1.0) == (False, "rmse 1.200 <= champion 1.000 * 1.050 = 1.050: failed")
    assert gate.check(1.04, 1.0)[0]
    assert gate.threshold(2.0) == pytest.approx(2.1)


def test_float_noise_counts_as_equal() -> None:
    # 0.93 - 0.01 == 0.9200000000000002 in floating point
    assert Gate.parse("roc_auc >= champion - 0.01").check(0.92, 0.93)[0]
    assert not Gate.parse("roc_auc > champion - 0.01").check(0.92, 0.93)[0]


def test_close_values_are_shown_with_enough_digits() -> None:
    ok, reason = Gate.parse("accuracy >= 0.92").check(0.9199)
    assert not ok
    assert reason == "accuracy 0.9199 >= 0.9200: failed"


def test_nan_candidate_fails() -> None:
    assert Gate.parse("accuracy >= 0.5").check(math.nan) == (False, "accuracy is not a number (nan): failed")


# -- properties -------------------------------------------------------------------------------------

_FINITE = st.floats(allow_nan=False, allow_infinity=False)
_POSITIVE = st.floats(min_value=0, exclude_min=True, allow_infinity=False)


@st.composite
def gates(draw: st.DrawFn) -> Gate:
    kind = draw(st.sampled_from(["absolute", "relative", "ratio"]))
    return Gate(
        metric=draw(st.sampled_from(KNOWN_METRICS)),
        op=draw(st.sampled_from([">=", ">", "<=", "<"])),
        kind=kind,
        value=draw(_POSITIVE if kind == "ratio" else _FINITE),
    )


@given(gates())
def test_parse_of_str_is_the_gate(gate: Gate) -> None:
    assert Gate.parse(str(gate)) == gate
    assert Gate.parse(gate.canonical) == gate
    assert Gate.parse(str(Gate.parse(str(gate)))) == gate


@given(gates(), _FINITE, _FINITE)
def test_check_agrees_with_the_operator(gate: Gate, candidate: float, champion: float) -> None:
    limit = gate.threshold(champion)
    assume(limit is not None and math.isfinite(limit))
    assume(not math.isclose(candidate, limit, rel_tol=1e-9, abs_tol=1e-12))
    ops = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
    ok, reason = gate.check(candidate, champion)
    assert ok == ops[gate.op](candidate, limit)
    assert reason.startswith(gate.metric) and reason.endswith("passed" if ok else "failed")


@given(st.text(max_size=60))
def test_any_text_parses_or_raises_spec_error(text: str) -> None:
    try:
        Gate.parse(text)
    except SpecError as exc:
        assert "\n" not in str(exc)
