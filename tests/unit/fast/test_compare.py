"""The gate's champion comparison (evaluate/compare.py) and the gate itself (evaluate/gate.py), on small
tables and models whose answers are known exactly."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from tidal.core.errors import SpecError
from tidal.evaluate.compare import MIN_COMPARED_ROWS, Champion, gate_decision, unseen_rows
from tidal.evaluate.gate import GateDecision, evaluate_gates
from tidal.spec.gates import Gate, GateSyntaxError, parse_gate
from tidal.spec.metrics import LOWER_IS_BETTER

from ._tiny import KINDS, OffsetModel, ParityModel, doubled_rows, parity_rows

# -- unseen_rows ---------------------------------------------------------------------------------------


def test_rows_the_champion_trained_on_are_left_out_matching_by_content() -> None:
    holdout = parity_rows(range(10))
    # Different index, other column order and an extra column: only the shared columns' values count.
    seen = parity_rows([2, 5, 7])[["y", "x"]].set_index(pd.Index([100, 200, 300]))
    seen["extra"] = "z"
    unseen = unseen_rows(holdout, [seen], "y")
    assert unseen is not None
    assert list(holdout["x"][unseen.to_numpy()]) == [0, 1, 3, 4, 6, 8, 9]


def test_rows_are_matched_on_every_shared_column_not_only_the_features() -> None:
    holdout = parity_rows(range(4))
    seen = holdout.copy()
    seen.loc[1, "y"] = 0  # the same x with another label is a different row
    unseen = unseen_rows(holdout, [seen], "y")
    assert unseen is not None
    assert unseen.tolist() == [False, True, False, False]


def test_several_training_tables_are_all_seen() -> None:
    holdout = parity_rows(range(6))
    unseen = unseen_rows(holdout, [parity_rows([0]), parity_rows([4, 5])], "y")
    assert unseen is not None
    assert unseen.tolist() == [False, True, True, True, False, False]


def test_none_unseen_when_the_champion_trained_on_every_row() -> None:
    holdout = parity_rows(range(5))
    unseen = unseen_rows(holdout, [parity_rows(range(10))], "y")
    assert unseen is not None
    assert not unseen.any()


def test_duplicates_share_one_fate() -> None:
    holdout = parity_rows([1, 1, 2, 2, 3])
    unseen = unseen_rows(holdout, [parity_rows([1])], "y")
    assert unseen is not None
    # both copies of a seen row are out, both copies of an unseen one stay
    assert unseen.tolist() == [False, False, True, True, True]


def test_rows_match_whatever_the_number_type_of_their_columns() -> None:
    # A null in the newer rows makes pandas read an integer column as floats: the rows are still the same.
    holdout = pd.DataFrame({"x": [1.0, 2.0, None], "y": [0, 1, 0]})
    seen = pd.DataFrame({"x": [1, 2], "y": [0, 1]})
    unseen = unseen_rows(holdout, [seen], "y")
    assert unseen is not None
    assert unseen.tolist() == [False, False, True]
    # numbers are not mistaken for text, nor text for numbers
    assert unseen_rows(holdout.assign(y=["0", "1", "0"]), [seen], "y").tolist() == [True, True, True]  # type: ignore[union-attr]


def test_cannot_tell_without_tables_or_without_the_target() -> None:
    holdout = parity_rows(range(3))
    assert unseen_rows(holdout, [], "y") is None
    assert unseen_rows(holdout, [holdout[["x"]]], "y") is None  # the target is not among the shared columns


# -- gate_decision -------------------------------------------------------------------------------------

HOLDOUT = parity_rows(range(100))  # 100 rows: x 0..99
ACC = parse_gate("accuracy >= champion - 0.05")


def decide(gates: list[Gate], candidate: Any, champion: Champion | None,
           holdout: pd.DataFrame = HOLDOUT, task: str = "classification") -> GateDecision:
    from tidal.evaluate.scoring import metrics_on

    mine = metrics_on(candidate, holdout, columns=["x"], kinds=KINDS, target="y", task=task)
    return gate_decision(gates, mine, candidate_model=candidate, holdout=holdout, columns=["x"], kinds=KINDS,
                         target="y", task=task, champion=champion)


def champion(model: Any, trained_on: list[pd.DataFrame] | None = None, columns: list[str] | None = None) -> Champion:
    return Champion(label="m:1", model=model, columns=columns or ["x"], trained_on=trained_on)


def test_no_champion_passes_champion_gates_and_says_why() -> None:
    d = decide([parse_gate("accuracy >= 0.5"), ACC], ParityModel(range(20)), None)
    assert d.passed and d.failed == []
    assert d.reasons[0] == "accuracy 0.800 >= 0.500: passed"
    assert d.reasons[1] == "accuracy 0.800 >= champion: no champion yet, passed"
    assert d.champion is None


def test_no_champion_still_applies_absolute_gates() -> None:
    d = decide([parse_gate("accuracy >= 0.9"), ACC], ParityModel(range(20)), None)
    assert not d.passed
    assert d.failed == ["accuracy 0.800 >= 0.900: failed"]


@pytest.mark.parametrize(("wrong_mine", "wrong_theirs", "passed"), [
    (range(10), range(20), True),   # better: 0.90 against 0.80
    (range(30), range(20), False),  # worse beyond the tolerance: 0.70 < 0.80 - 0.05
    (range(23), range(20), True),   # worse within the tolerance: 0.77 >= 0.75
    (range(25), range(20), True),   # exactly at the limit: 0.75 >= 0.75
])
def test_higher_is_better_metric_against_the_champion(wrong_mine: range, wrong_theirs: range, passed: bool) -> None:
    d = decide([ACC], ParityModel(wrong_mine), champion(ParityModel(wrong_theirs)))
    assert d.passed is passed
    assert d.champion is not None
    assert d.champion["label"] == "m:1"
    assert d.champion["metrics"]["accuracy"] == pytest.approx(0.8)
    assert d.champion["compared"] == {"rows": 100, "of": 100}
    assert "champion 0.800 - 0.050 = 0.750" in d.reasons[0]
    assert d.failed == ([] if passed else d.reasons)


@pytest.mark.parametrize(("mine", "theirs", "passed"), [
    (1.0, 2.0, True),    # better: a smaller error
    (2.5, 2.0, False),   # worse beyond 5%
    (2.08, 2.0, True),   # worse within 5%
])
def test_lower_is_better_metric_against_the_champion(mine: float, theirs: float, passed: bool) -> None:
    assert "rmse" in LOWER_IS_BETTER and "mae" in LOWER_IS_BETTER
    holdout = doubled_rows(range(60))
    gates = [parse_gate("rmse <= champion * 1.05"), parse_gate("mae <= champion + 0.1")]
    d = decide(gates, OffsetModel(mine), champion(OffsetModel(theirs)), holdout=holdout, task="regression")
    assert d.passed is passed
    assert d.champion is not None
    assert d.champion["metrics"]["rmse"] == pytest.approx(theirs)
    assert d.reasons[0].endswith("passed" if passed else "failed")


def test_champion_is_compared_on_the_rows_it_did_not_train_on() -> None:
    # The champion trained on x 0..39 and gets all of them right; the candidate gets them all wrong.
    seen = parity_rows(range(40))
    mine, theirs = ParityModel(range(40)), ParityModel(range(40, 50))
    d = decide([ACC, parse_gate("accuracy >= 0.5")], mine, champion(theirs, [seen]))
    assert d.champion is not None
    compared = d.champion["compared"]
    assert compared == {"rows": 60, "of": 100, "champion_trained_on": 40}
    # On the 60 unseen rows: the champion is wrong on 10 of them, the candidate on none.
    assert d.champion["metrics"]["accuracy"] == pytest.approx(50 / 60)
    assert d.champion["candidate_metrics"]["accuracy"] == pytest.approx(1.0)
    # The relative gate uses the same rows for both; the absolute gate the whole holdout (0.60).
    assert d.reasons[0].startswith("accuracy 1.000 >= champion 0.833")
    assert d.reasons[1] == "accuracy 0.600 >= 0.500: passed"
    assert d.reasons[-1] == "m:1 was compared on the 60 of the 100 holdout rows it had not trained on"
    assert d.passed


def test_too_few_unseen_rows_compares_on_the_whole_holdout_and_says_so() -> None:
    fresh = MIN_COMPARED_ROWS - 1
    seen = parity_rows(range(100 - fresh))
    d = decide([ACC], ParityModel(range(10)), champion(ParityModel(range(20)), [seen]))
    assert d.champion is not None
    compared = d.champion["compared"]
    assert compared["rows"] == compared["of"] == 100
    assert compared["champion_trained_on"] == 100 - fresh
    assert compared["note"] == (f"the champion had trained on all but {fresh} of the holdout's rows: it is "
                                "compared on all of them, which favours it")
    assert "candidate_metrics" not in d.champion
    assert d.reasons[-1] == compared["note"]
    assert d.champion["metrics"]["accuracy"] == pytest.approx(0.8)


def test_exactly_the_minimum_of_unseen_rows_is_enough() -> None:
    seen = parity_rows(range(100 - MIN_COMPARED_ROWS))
    d = decide([ACC], ParityModel(), champion(ParityModel(), [seen]))
    assert d.champion is not None
    assert d.champion["compared"]["rows"] == MIN_COMPARED_ROWS
    assert "note" not in d.champion["compared"]


def test_unknown_training_tables_compare_on_the_whole_holdout() -> None:
    d = decide([ACC], ParityModel(), champion(ParityModel(range(20)), None))
    assert d.champion is not None
    assert d.champion["compared"] == {"rows": 100, "of": 100}
    assert len(d.reasons) == 1  # nothing to say about which rows


def test_a_champion_whose_columns_are_gone_is_not_scored() -> None:
    d = decide([ACC], ParityModel(), champion(ParityModel(), None, columns=["x", "gone"]))
    assert d.champion is None
    assert d.passed and "m:1 could not be scored on these rows" in d.reasons[0]
    assert "no champion yet" not in " ".join(d.reasons)  # there is one: it was not scored, and that is said
    assert "needs the column(s) 'gone'" in d.reasons[1]


def test_a_metric_that_cannot_be_computed_fails_its_gate() -> None:
    d = evaluate_gates([parse_gate("roc_auc >= 0.5")], {"roc_auc": None}, None)
    assert not d.passed
    assert d.failed == ["roc_auc >= 0.5: roc_auc could not be computed on the holdout"]


def test_decision_round_trips_through_its_dict() -> None:
    d = decide([ACC], ParityModel(range(30)), champion(ParityModel(range(20)), [parity_rows(range(60, 100))]))
    again = GateDecision.from_dict(d.to_dict())
    assert again == d
    assert not again.passed


# -- gate expressions ------------------------------------------------------------------------------------


def test_gate_expressions_parse_into_their_kind() -> None:
    assert parse_gate("accuracy >= 0.7") == Gate(metric="accuracy", op=">=", kind="absolute", value=0.7)
    assert parse_gate(" roc_auc>=champion-0.01 ") == Gate(metric="roc_auc", op=">=", kind="relative", value=-0.01)
    assert parse_gate("rmse <= champion * 1.05") == Gate(metric="rmse", op="<=", kind="ratio", value=1.05)
    assert parse_gate("f1 > champion").threshold(0.5) == 0.5


def test_gate_syntax_error_says_what_is_wrong_and_how_to_fix_it() -> None:
    with pytest.raises(GateSyntaxError) as err:
        parse_gate("accuracy => 0.7")
    assert err.value.kind == "gate_syntax"
    assert "could not read the gate 'accuracy => 0.7'" in err.value.message
    assert err.value.hint == "write '>=' instead of '=>'"
    assert isinstance(err.value, SpecError)


def test_gate_with_an_unknown_metric_suggests_the_nearest() -> None:
    with pytest.raises(GateSyntaxError) as err:
        parse_gate("acuracy >= 0.7")
    assert err.value.kind == "unknown_metric"
    assert err.value.hint == "did you mean 'accuracy'?"


def test_gate_with_a_bad_right_side_lists_the_accepted_forms() -> None:
    with pytest.raises(GateSyntaxError) as err:
        parse_gate("accuracy >= champion / 2")
    assert "could not read the right side 'champion / 2'" in err.value.message
    assert "champion * a number" in (err.value.hint or "")
