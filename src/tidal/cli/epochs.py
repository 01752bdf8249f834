"""The epoch table: a network's per-epoch curves, as ``tidal run`` and ``tidal runs show`` print them.

The curves are the run's metrics with steps (step i is epoch i + 1): tidal.nn's ``curve.train.loss``,
``curve.train.accuracy``, ``curve.valid.loss`` and ``curve.valid.accuracy``; scikit-learn's MLP logs its
``loss_curve_`` as ``curve.loss`` and, with ``early_stopping``, its per-epoch validation score (accuracy for a
classifier, ``curve.valid.accuracy``; R² for a regressor, ``curve.validation_score``). Only what was measured
gets a column: scikit-learn does not measure an MLP's training accuracy, so that column is not there. A run
without a per-epoch loss (a booster's rounds, a forest) has no table.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table

from tidal.core.entities import Metric
from tidal.workspace.shapes import curves

#: (heading, the curves that fill it, first found): the columns in order.
COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Loss", ("curve.train.loss", "curve.loss")),
    ("Accuracy", ("curve.train.accuracy",)),
    ("Val loss", ("curve.valid.loss",)),
    ("Val accuracy", ("curve.valid.accuracy",)),
)
#: An MLP regressor's validation R², shown only beside an MLP's loss (a booster's validation_score is no epoch).
R2 = ("Val R²", "curve.validation_score")
#: At most this many epochs are printed: the first, the last, the best and evenly spaced ones between.
MAX_ROWS = 25




def epoch_columns(found: dict[str, list[float]]) -> list[tuple[str, list[float]]]:
    """(heading, values) for each measured column; empty when there is no per-epoch loss."""
    out = []
    for heading, keys in COLUMNS:
        key = next((k for k in keys if k in found), None)
        if key is not None:
            out.append((heading, found[key]))
    if "curve.loss" in found and R2[1] in found:
        out.append((R2[0], found[R2[1]]))
    return out if out and out[0][0] == "Loss" else []


def best_epoch(columns: list[tuple[str, list[float]]]) -> int | None:
    """The epoch (1-based) of the lowest validation loss (what tidal.nn's early stopping keeps), else of the
    highest validation accuracy or R² (what scikit-learn's MLP keeps); None without validation."""
    named = dict(columns)
    if named.get("Val loss"):
        values = named["Val loss"]
        return values.index(min(values)) + 1
    for heading in ("Val accuracy", R2[0]):
        if named.get(heading):
            values = named[heading]
            return values.index(max(values)) + 1
    return None


def _shown(n: int, best: int | None) -> list[int]:
    if n <= MAX_ROWS:
        return list(range(1, n + 1))
    step = -(-n // (MAX_ROWS - 2))
    return sorted({1, n, *range(1, n + 1, step), *([best] if best else [])})


def epoch_table(metrics: Iterable[Metric]) -> Table | None:
    """The epoch table of a run's metrics, or None when it logged no per-epoch loss."""
    columns = epoch_columns(curves(metrics))
    if not columns:
        return None
    n = max(len(values) for _, values in columns)
    best = best_epoch(columns)
    rows = _shown(n, best)
    title = f"epochs ({n}" + (f", best {best}" if best else "") + ")"  # short: a title wider than the table wraps
    caption = None if len(rows) == n else f"{len(rows)} of {n} epochs shown; --json: all"
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    table.add_column("Epoch", justify="right")
    for heading, _ in columns:
        table.add_column(heading, justify="right")
    table.add_column("")
    for epoch in rows:
        cells = [f"{values[epoch - 1]:.4f}" if epoch <= len(values) else "" for _, values in columns]
        table.add_row(str(epoch), *cells, "best" if epoch == best else "",
                      style="bold" if epoch == best else None)
    return table


__all__ = ["COLUMNS", "MAX_ROWS", "best_epoch", "curves", "epoch_columns", "epoch_table"]
