"""Sample rows of a model version, made from its reference profile, to check a model before it serves.

A version stores the statistics profile of its training data (``mv.profile["features"]``): sorted value
samples and quantiles for numbers, the most frequent categories for text. :func:`sample_rows` turns them
into realistic rows (each column walks its own values, so the rows are not all medians), with no need
for the training data; an image column gets images made from its profile's size, channels and means.
The predictor builder runs them through the model: the version must answer them,
and the fast path must give exactly the generic path's outputs on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tidal.core.signature import Signature

#: A category no training data has: probes how the model treats an unseen value.
UNSEEN = "\x00tidal-unseen-category"


def column_values(kind: str, profile: Mapping[str, Any] | None, count: int) -> list[Any]:
    """Up to ``count`` representative JSON values of one column."""
    prof = profile or {}
    if kind in ("numeric", "integer"):
        sample = [v for v in prof.get("sample") or [] if v is not None]
        if not sample:
            quantiles = prof.get("quantiles") or {}
            sample = [v for v in (prof.get("min"), *quantiles.values(), prof.get("max")) if v is not None]
        if not sample:
            return [0.0, 1.0]
        step = max(1, (len(sample) - 1) // max(1, count - 1))
        picked = sample[::step][:count]
        if sample[-1] not in picked:
            picked.append(sample[-1])
        return [int(v) if kind == "integer" and float(v).is_integer() else float(v) for v in picked]
    if kind == "boolean":
        return [False, True]
    if kind == "datetime":
        stamps = [v for v in (prof.get("min"), prof.get("max")) if v]
        return stamps or ["2024-01-01T00:00:00"]
    top = list((prof.get("top") or {}).keys())
    return top[:count] or ["a"]


def sample_rows(signature: Signature, profile: Mapping[str, Any] | None, n: int = 12) -> list[dict[str, Any]]:
    """``n`` rows of plausible values for the signature's columns. An image column gets canonical PNGs of
    the training images' size and channels, around their channel means
    (:func:`~tidal.data.images.serving.sample_images`), as a checked row holds them."""
    columns: Mapping[str, str] = signature.columns
    per_column = ((profile or {}).get("features") or {}).get("columns") or {}
    values: dict[str, list[Any]] = {}
    for c, k in columns.items():
        if k == "image":
            from tidal.data.images.serving import sample_images

            values[c] = list(sample_images(signature.images.get(c), per_column.get(c), n))
        else:
            values[c] = column_values(k, per_column.get(c), n)
    rows = []
    for i in range(n):
        # Column j starts at offset j and walks its values at its own pace: rows mix low and high values.
        rows.append({c: vals[(i * (j + 1) + j) % len(vals)] for j, (c, vals) in enumerate(values.items())})
    return rows


__all__ = ["UNSEEN", "column_values", "sample_rows"]
