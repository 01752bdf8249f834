"""What a person reads about a column of images: sizes, modes, channel statistics, and a contact sheet.

``image_profile(series)`` is the ``image`` kind's part of a column profile (:mod:`tidal.data.profile`);
the count per class is the label column's own profile (``top``). The channel means and standard
deviations are over every pixel of up to :data:`STATS_SAMPLE` images (evenly spaced, so the same data
gives the same numbers), in [0, 1], on 1 channel when every image is grey and on 3 (R, G, B) otherwise;
alpha is left out.

``contact_sheet_png(df, ...)`` draws a few images per class in a grid (one row per class, labelled), and
``contact_sheet_html`` wraps it as an ``<img>`` with a ``data:`` URI, so a report embeds it with no
other file.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from tidal.data.images.codec import CHANNELS, ImageProblem, decode, pillow, to_array

#: How many images the channel statistics are computed on (evenly spaced over the column).
STATS_SAMPLE = 2000
#: How many sizes ``sizes.top`` lists.
TOP_SIZES = 10


def _images(values: Iterable[Any]) -> Iterable[Any]:
    for raw in values:
        if raw is None:
            continue
        try:
            yield decode(raw)
        except ImageProblem:  # collection refused or left such images out; a profile never fails on one
            continue


def _header(raw: Any) -> tuple[tuple[int, int], str] | None:
    """The size and mode of an image from its header alone (a snapshot's canonical PNG: its mode is the one
    it decodes to); anything else is decoded to learn them, and None when it cannot be read."""
    if isinstance(raw, bytes) and raw.startswith(b"\x89PNG\r\n\x1a\n"):
        try:
            with pillow().open(io.BytesIO(raw), formats=("PNG",)) as image:
                if image.mode in CHANNELS and "transparency" not in image.info:
                    return image.size, image.mode
        except (OSError, ValueError, SyntaxError):
            return None
    try:
        image = decode(raw)
    except ImageProblem:
        return None
    return image.size, image.mode


def image_profile(series: pd.Series) -> dict[str, Any]:
    """Sizes, modes and channel statistics of a column of encoded images (see the module docstring)."""
    values = [v for v in series.tolist() if v is not None]
    sizes: Counter[tuple[int, int]] = Counter()
    modes: Counter[str] = Counter()
    for found in map(_header, values):
        if found is not None:
            sizes[found[0]] += 1
            modes[found[1]] += 1
    if not sizes:
        return {"sizes": None, "modes": {}, "channels": None, "channel_mean": None, "channel_std": None}
    grey = all(CHANNELS[m] <= 2 for m in modes)
    channels = 1 if grey else 3
    picks = np.unique(np.round(np.linspace(0, len(values) - 1, min(len(values), STATS_SAMPLE))).astype(int))
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    count = 0
    for image in _images(values[i] for i in picks):
        pixels = to_array(image.convert("L" if grey else "RGB")).reshape(-1, channels).astype(np.float64) / 255.0
        total += pixels.sum(axis=0)
        total_sq += (pixels**2).sum(axis=0)
        count += pixels.shape[0]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    ordered = sorted(sizes, key=lambda s: (s[0] * s[1], s))
    return {
        "sizes": {"min": list(ordered[0]), "max": list(ordered[-1]),
                  "most_common": list(sizes.most_common(1)[0][0]),
                  "top": {f"{w}x{h}": n for (w, h), n in sizes.most_common(TOP_SIZES)}},
        "modes": dict(sorted(modes.items())),
        "channels": channels,
        "channel_mean": [round(float(v), 6) for v in mean],
        "channel_std": [round(float(v), 6) for v in std],
    }


def contact_sheet_png(df: pd.DataFrame, *, image: str, label: str, per_class: int = 6, cell: int = 64,
                      max_classes: int = 20) -> bytes:
    """A PNG of the first ``per_class`` images of each class (up to ``max_classes``, sorted), one row a
    class with its name on the left, each image fitted in a ``cell``-pixel square."""
    Image = pillow()
    from PIL import ImageDraw

    classes = sorted(df[label].dropna().unique().tolist(), key=str)[:max_classes]
    margin, gap = 96, 4
    width = margin + per_class * (cell + gap)
    height = max(1, len(classes)) * (cell + gap) + gap
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for row, cls in enumerate(classes):
        top = gap + row * (cell + gap)
        draw.text((4, top + cell // 2 - 6), str(cls)[:14], fill="black")
        for col, thumb in enumerate(_images(df.loc[df[label] == cls, image].head(per_class).tolist())):
            thumb = thumb.convert("RGB")
            scale = cell / max(thumb.size)
            thumb = thumb.resize((max(1, round(thumb.width * scale)), max(1, round(thumb.height * scale))),
                                 Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BILINEAR)
            sheet.paste(thumb, (margin + col * (cell + gap), top))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


def contact_sheet_html(df: pd.DataFrame, *, image: str, label: str, per_class: int = 6) -> str:
    """An HTML ``<figure>`` with the contact sheet as a ``data:image/png;base64`` URI (no file beside it)."""
    png = contact_sheet_png(df, image=image, label=label, per_class=per_class)
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    n = df[label].nunique()
    caption = html.escape(f"{per_class} images per class, {n} class{'es' if n != 1 else ''}, {len(df)} images")
    return (f'<figure class="contact-sheet"><img alt="contact sheet" src="{uri}">'
            f"<figcaption>{caption}</figcaption></figure>")


def contact_sheets(df: pd.DataFrame, kinds: dict[str, str], target: str) -> dict[str, bytes]:
    """The run artifacts that show a snapshot's images: ``contact_sheet.png`` and ``contact_sheet.html`` (the
    same sheet as a ``data:`` URI) for its first image column, by class; empty for a table without images."""
    images = [c for c, kind in kinds.items() if kind == "image" and c in df.columns]
    if not images or target not in df.columns:
        return {}
    png = contact_sheet_png(df, image=images[0], label=target)
    page = ("<!doctype html><meta charset=\"utf-8\"><title>contact sheet</title>"
            + contact_sheet_html(df, image=images[0], label=target))
    return {"contact_sheet.png": png, "contact_sheet.html": page.encode()}


__all__ = ["STATS_SAMPLE", "contact_sheet_html", "contact_sheet_png", "contact_sheets", "image_profile"]
