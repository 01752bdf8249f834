"""The gate: a candidate judged by ``validate.gates``, against the champion on the rows neither trained on.

A gate that names the champion (``accuracy >= champion``) compares like with like: both models answer the
same holdout rows. A champion refitted on everything it had has learned some of those rows already (the
loop retrains on a growing window), which would favour it; so the rows it trained on are found by content
and left out, when at least :data:`MIN_COMPARED_ROWS` remain, and the decision says on how many rows the
two were compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tidal.evaluate.gate import GateDecision, evaluate_gates
from tidal.evaluate.scoring import Metrics, metrics_on
from tidal.spec.gates import Gate

#: The fewest holdout rows the champion has not trained on that it is compared on; with fewer, it is
#: compared on the whole holdout and the decision says so.
MIN_COMPARED_ROWS = 30


@dataclass(frozen=True)
class Champion:
    """The serving version as the gate sees it: its ``label`` (``elec2:3``), its loaded ``model``, the
    ``columns`` it takes, and the tables it was fitted on (None when they are unknown or gone)."""

    label: str
    model: Any
    columns: list[str]
    trained_on: list[pd.DataFrame] | None


def unseen_rows(holdout: pd.DataFrame, trained_on: Sequence[pd.DataFrame], target: str) -> pd.Series | None:
    """Which rows of ``holdout`` (True) appear in none of the ``trained_on`` tables, matched by content on
    every column they all share; None when that cannot be told (no tables, or the target not shared)."""
    if not trained_on:
        return None
    common = [c for c in holdout.columns if all(c in f.columns for f in trained_on)]
    if target not in common:
        return None
    seen = pd.concat([_row_hashes(f[common]) for f in trained_on], ignore_index=True)
    return ~_row_hashes(holdout[common]).isin(set(seen.to_numpy()))


def _row_hashes(df: pd.DataFrame) -> pd.Series:
    """One hash per row of ``df``, the same for the same values whatever their number type: a column read as
    integers in one table and as floats in another (a null in the newer rows) still matches."""
    numbers = [c for c in df.columns
               if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    if numbers:
        df = df.astype(dict.fromkeys(numbers, "float64"))
    return pd.util.hash_pandas_object(df, index=False)


def gate_decision(
    gates: Sequence[Gate], candidate: Mapping[str, float | None], *, candidate_model: Any, holdout: pd.DataFrame,
    columns: Sequence[str], kinds: Mapping[str, str], target: str, task: str, champion: Champion | None,
) -> GateDecision:
    """Check every gate for a candidate whose holdout metrics are ``candidate``; with a ``champion``, score
    it on the same rows (those it did not train on, where enough remain) and the candidate on them too."""
    if champion is None:
        return evaluate_gates(gates, candidate, None)
    rows = holdout
    compared: dict[str, Any] = {"rows": len(holdout), "of": len(holdout)}
    mine: Metrics | None = None
    unseen = unseen_rows(holdout, champion.trained_on or [], target)
    if unseen is not None and not unseen.all():
        fresh = int(unseen.sum())
        compared["champion_trained_on"] = len(holdout) - fresh
        if fresh >= MIN_COMPARED_ROWS:
            rows = holdout[unseen.to_numpy()].reset_index(drop=True)
            compared["rows"] = fresh
            mine = metrics_on(candidate_model, rows, columns=columns, kinds=kinds, target=target, task=task)
        else:
            compared["note"] = (f"the champion had trained on all but {fresh} of the holdout's rows: it is "
                                "compared on all of them, which favours it")
    theirs = None
    missing = [c for c in champion.columns if c not in rows.columns]
    if missing:  # the new data lacks what the champion needs: gates naming it pass, and the decision says why
        compared["note"] = (f"{champion.label} cannot be scored on this data: it needs the column(s) "
                            f"{', '.join(map(repr, missing[:5]))}, which the data no longer has; gates that name "
                            "the champion were passed without it")
    else:
        theirs = metrics_on(champion.model, rows, columns=champion.columns, kinds=kinds, target=target, task=task)
    return evaluate_gates(gates, candidate, theirs, champion.label, candidate_vs_champion=mine, compared=compared)


__all__ = ["MIN_COMPARED_ROWS", "Champion", "gate_decision", "unseen_rows"]
