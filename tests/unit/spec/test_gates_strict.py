"""``Gate.without_tolerance``: the gates a retrain for growth alone must pass (no slack for the champion)."""

from __future__ import annotations

import pytest

from tidal.spec.gates import Gate


@pytest.mark.parametrize(("text", "strict"), [
    ("accuracy >= champion - 0.02", "accuracy >= champion"),
    ("rmse <= champion * 1.02", "rmse <= champion"),
    ("rmse <= champion + 0.5", "rmse <= champion"),
    ("roc_auc > champion * 0.99", "roc_auc > champion"),
    # already asking for an improvement, or not naming the champion: unchanged
    ("accuracy >= champion + 0.01", "accuracy >= champion + 0.01"),
    ("rmse <= champion * 0.9", "rmse <= champion * 0.9"),
    ("accuracy >= 0.7", "accuracy >= 0.7"),
])
def test_without_tolerance(text: str, strict: str) -> None:
    assert Gate.parse(text).without_tolerance().canonical == strict


def test_strict_gate_fails_a_slightly_worse_candidate() -> None:
    loose = Gate.parse("accuracy >= champion - 0.02")
    strict = loose.without_tolerance()
    assert loose.check(0.928, 0.930)[0] and not strict.check(0.928, 0.930)[0]
    assert strict.check(0.930, 0.930)[0]
