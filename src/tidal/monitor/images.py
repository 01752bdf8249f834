"""Images in a drift report: each column of images is judged on its statistics, one numeric feature each.

    from tidal.monitor.images import expand_images
    reference, frame, columns = expand_images(features["columns"], window, columns)
    detect_drift({"columns": reference}, frame, columns=columns)   # image.brightness, image.sharpness, ...

A per-pixel test means nothing on images (a digit moved by one pixel changes every pixel's distribution), so
an ``image`` column is replaced by the statistics its training images kept in the version's reference
profile (``profile["features"]["columns"][name]["statistics"]``, :mod:`tidal.data.images.stats`): the column
``image`` becomes ``image.brightness``, ``image.contrast``, ``image.sharpness``, ``image.orientation`` (and
``image.width`` / ``image.height`` when the training images varied in size), each computed on the window's
rows and tested like any numeric feature: the same test choice, thresholds, holdout baseline and drift
share. A statistic can be named alone (``monitor.drift.columns: [image.sharpness]``); the pixel components
``image.pc1`` ... ``image.pc3`` are monitored only when named so: on the digits they do not move with a
darker image, so among the defaults they would dilute the drift share (a darkened window: 3 drifted
features of 7, under the 50 % share, no alert). A version registered before the statistics existed keeps
its image column (skipped, as before).

:func:`image_panel` is what the report keeps to show it: per statistic the reference and window means and
the verdict, and a few thumbnails of the window beside a few of the training images (base64 PNG).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: How many of the window's thumbnails a report keeps per image column (evenly spaced over the window).
WINDOW_THUMBNAILS = 8


def statistic_columns(reference: Mapping[str, Any], name: str, *, optional: bool = False,
                      ) -> dict[str, Mapping[str, Any]]:
    """``{"<name>.<statistic>": numeric column profile}`` of an image column's reference (with ``optional``,
    the pixel components monitored only when named too); empty for any other column, or an image column of a
    version registered before the statistics existed."""
    ref = reference.get(name) or {}
    if ref.get("kind") != "image":
        return {}
    stats = dict((ref.get("statistics") or {}).get("columns") or {})
    if optional:
        stats.update((ref.get("statistics") or {}).get("optional") or {})
    return {f"{name}.{stat}": prof for stat, prof in stats.items()}


def expand_images(reference: Mapping[str, Any], frame: pd.DataFrame, columns: Sequence[str], *,
                  optional: bool = False) -> tuple[dict[str, Any], pd.DataFrame, list[str]]:
    """The reference columns, the frame and the column list with each image column of ``columns`` that has
    statistics replaced by them (see the module docstring), and a statistic named alone (``image.brightness``)
    resolved to it; with ``optional``, the pixel components too. ``frame``'s image column holds encoded images
    (a snapshot) or what the prediction log keeps of them (a window); it is left in place."""
    ref = dict(reference)
    out_columns: list[str] = []
    added: dict[str, np.ndarray] = {}
    for name in columns:
        stats = statistic_columns(reference, name, optional=optional)
        if not stats and name not in reference and "." in name:
            # one statistic named on its own (monitor.drift.columns: [image.brightness])
            head, _ = name.rsplit(".", 1)
            stats = {k: v for k, v in statistic_columns(reference, head, optional=True).items() if k == name}
            if stats:
                name = head
        if not stats:
            out_columns.append(name)
            continue
        from tidal.data.images.stats import statistics_frame  # Pillow, only for a column of images

        names = [s[len(name) + 1:] for s in stats]
        values = frame[name].tolist() if name in frame.columns else [None] * len(frame)
        components = ((reference.get(name) or {}).get("statistics") or {}).get("components")
        table = statistics_frame(values, names, components)
        for full, stat in zip(stats, names, strict=True):
            ref[full] = stats[full]
            if name in frame.columns:  # absent from the window: its statistics are reported missing
                added[full] = table[stat].to_numpy()
            out_columns.append(full)
    if added:
        frame = pd.concat([frame, pd.DataFrame(added, index=frame.index)], axis=1)
    return ref, frame, out_columns


def image_panel(reference: Mapping[str, Any], frame: pd.DataFrame, judged: Sequence[str],
                drift: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per image column of ``reference`` with statistics among ``judged`` (:func:`expand_images`' column list):
    ``{"column", "statistics": [{"name", "reference", "window", "drifted"}], "window": [thumbnail, ...],
    "reference": [thumbnail, ...]}`` — the means on both sides (from the reference profile and ``frame``'s
    expanded columns), the verdicts of ``drift`` (a ``DatasetDrift.to_dict()``), and a few thumbnails of each
    side."""
    verdicts = {c.get("column"): bool(c.get("drifted")) for c in drift.get("columns") or []}
    panels = []
    for name in reference:
        stats = {k: v for k, v in statistic_columns(reference, name, optional=True).items() if k in judged}
        if not stats:
            continue
        rows = []
        for full, prof in stats.items():
            window = frame[full].to_numpy(dtype=np.float64) if full in frame.columns else np.asarray([])
            window = window[np.isfinite(window)]
            rows.append({"name": full, "reference": prof.get("mean"),
                         "window": float(window.mean()) if window.size else None,
                         "drifted": verdicts.get(full, False)})
        values = frame[name].tolist() if name in frame.columns else []
        # a log row keeps a thumbnail; a frame of encoded images (a backtest's) gets one made as the log makes it
        shown = [v for v in values if isinstance(v, bytes | bytearray) or (
            isinstance(v, Mapping) and isinstance(v.get("thumbnail"), str))]
        picks = np.unique(np.round(np.linspace(0, len(shown) - 1, min(len(shown), WINDOW_THUMBNAILS))).astype(int))
        panels.append({"column": name, "statistics": rows,
                       "window": [t for i in picks if (t := _thumbnail(shown[int(i)])) is not None] if shown else [],
                       "reference": list(((reference.get(name) or {}).get("statistics") or {}).get("thumbnails")
                                         or [])})
    return panels


def _thumbnail(value: Any) -> str | None:
    """The base64 PNG thumbnail of a logged image (kept in the row) or of encoded image bytes (made)."""
    if isinstance(value, Mapping):
        return str(value["thumbnail"])
    from tidal.data.images.codec import ImageProblem, canonicalise
    from tidal.data.images.serving import logged_image

    try:
        return str(logged_image(canonicalise(bytes(value))[0])["thumbnail"])
    except (ImageProblem, OSError, ValueError):
        return None


__all__ = ["WINDOW_THUMBNAILS", "expand_images", "image_panel", "statistic_columns"]
