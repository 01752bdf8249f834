"""Served = validated (issue #12, point 2): a version is registered ``validated`` only when its stored form,
loaded back as the server loads it, answers its holdout exactly as the model that passed the gate did.

Zero tolerance, on purpose: the same library on the same rows in one process gives the same numbers unless
the stored form lost something (a lossy format, a missing fitted attribute), and any tolerance would let
such a format through.
"""

from __future__ import annotations

import numpy as np

SERVED = "served = validated"


def served_difference(want: tuple[np.ndarray, np.ndarray | None],
                       got: tuple[np.ndarray, np.ndarray | None]) -> str | None:
    """What differs between the in-memory model's holdout outputs (``want``) and the stored one's, or None."""
    (pred, proba), (pred2, proba2) = want, got
    if pred.shape != pred2.shape:
        return f"{SERVED}: the stored model answers {pred2.shape[0]} predictions for {pred.shape[0]} rows"
    differ = sum(a != b and not (a != a and b != b)  # NaN (a != a) equals NaN here
                 for a, b in zip(pred.tolist(), pred2.tolist(), strict=True))
    note = ""
    if proba is not None or proba2 is not None:
        if proba is None or proba2 is None or proba.shape != proba2.shape:
            return f"{SERVED}: the stored model does not give the class probabilities the model did"
        if not np.array_equal(proba, proba2, equal_nan=True):
            gap = np.nanmax(np.abs(proba.astype(np.float64) - proba2.astype(np.float64)))
            note = f", probabilities up to {gap:.3g} apart"
    if differ == 0 and not note:
        return None
    return (f"{SERVED}: the stored model predicts the holdout differently from the model that was gated "
            f"({differ} of {pred.shape[0]} predictions differ{note}): it would not serve what was validated")


__all__ = ["SERVED", "served_difference"]
