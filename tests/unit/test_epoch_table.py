"""The epoch table (``tidal.cli.epochs``) from a run's stored curves: tidal.nn's four columns, the issue's
trace, scikit-learn's MLP with only what it measured, no table without a per-epoch loss, and long runs cut
to a readable number of rows with the best epoch kept."""

from __future__ import annotations

from rich.console import Console

from tidal.cli.epochs import MAX_ROWS, curves, epoch_table
from tidal.core.entities import Metric


def _metrics(**series: list[float]) -> list[Metric]:
    return [Metric(f"curve.{k.replace('__', '.')}", v, i) for k, values in series.items()
            for i, v in enumerate(values)]


def _text(metrics: list[Metric]) -> str:
    table = epoch_table(metrics)
    assert table is not None
    console = Console(width=120, record=True)
    console.print(table)
    return console.export_text()


def test_a_networks_curves_give_one_row_per_epoch_with_the_best_marked() -> None:
    text = _text(_metrics(train__loss=[0.65, 0.45, 0.30], train__accuracy=[0.60, 0.75, 0.85],
                          valid__loss=[0.70, 0.50, 0.52], valid__accuracy=[0.55, 0.70, 0.72]))
    lines = text.splitlines()
    assert "epochs (3, best 2)" in lines[0]
    header = next(line for line in lines if "Epoch" in line)
    for heading in ("Loss", "Accuracy", "Val loss", "Val accuracy"):
        assert heading in header
    rows = [line for line in lines if line.strip("│ ").split(" ")[0] in ("1", "2", "3")]
    assert "0.6500" in rows[0] and "0.6000" in rows[0] and "best" not in rows[0]
    assert "0.4500" in rows[1] and "0.7500" in rows[1] and "best" in rows[1]
    assert "0.3000" in rows[2] and "0.8500" in rows[2]


def test_an_mlp_shows_its_loss_and_validation_alone() -> None:
    text = _text(_metrics(loss=[0.9, 0.5], valid__accuracy=[0.6, 0.8]))
    header = next(line for line in text.splitlines() if "Epoch" in line)
    assert "Loss" in header and "Val accuracy" in header and "Val loss" not in header
    assert "Accuracy" not in header.replace("Val accuracy", "")  # never measured: no column
    assert "epochs (2, best 2)" in text
    regressor = _text(_metrics(loss=[0.9, 0.5], validation_score=[0.3, 0.4]))
    assert "Val R²" in regressor
    without = _text(_metrics(loss=[0.9, 0.5, 0.4]))
    assert "best" not in without and "epochs (3)" in without


def test_no_per_epoch_loss_no_table() -> None:
    assert epoch_table(_metrics(train_score=[-0.6, -0.5], validation_score=[-0.6, -0.55])) is None
    assert epoch_table([Metric("validation.accuracy", 0.9)]) is None


def test_a_long_run_is_cut_to_a_few_rows_keeping_the_first_last_and_best() -> None:
    losses = [1.0 / (i + 1) for i in range(300)]
    valid = [abs(i - 137) / 300 for i in range(300)]
    metrics = _metrics(train__loss=losses, valid__loss=valid)
    table = epoch_table(metrics)
    assert table is not None and table.row_count <= MAX_ROWS + 1
    text = _text(metrics)
    assert "epochs (300, best 138)" in text
    assert f"{table.row_count} of 300 epochs shown; --json: all" in " ".join(text.split())
    epochs = [line.strip("│ ").split(" ")[0] for line in text.splitlines()]
    assert {"1", "138", "300"} <= set(epochs)
    assert curves(metrics)["curve.train.loss"] == losses
