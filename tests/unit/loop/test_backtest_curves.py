"""The backtest's rolling score curves, on streams shorter and longer than their window (200 rows)."""

from __future__ import annotations

import numpy as np
import pytest

from tidal.loop.backtest import rolling_curves


@pytest.mark.parametrize("n", [11, 150, 199])
def test_a_stream_shorter_than_the_window_is_one_window(n: int) -> None:
    # found by the corpus: a replay of 160 rows died with IndexError (the window ran past the stream)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    pred = np.where(rng.random(n) < 0.7, y, (y + 1) % 3)
    rows, curves = rolling_curves("classification", y, {"loop": pred})
    assert rows[-1] == n and all(0 < r <= n for r in rows)
    assert curves["loop"][-1] == pytest.approx(float(np.mean(y == pred)))


def test_a_long_stream_scores_each_point_over_the_200_rows_before_it() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=1000)
    pred = y + rng.normal(scale=0.5, size=1000)
    rows, curves = rolling_curves("regression", y, {"loop": pred})
    assert rows[0] == 200 and rows[-1] == 1000
    for row, value in zip(rows, curves["loop"], strict=True):
        expected = np.sqrt(np.mean((y[row - 200:row] - pred[row - 200:row]) ** 2))
        assert value == pytest.approx(expected)
