"""Collect images: read one of the three layouts into a table, decode and check every image, keep canonical PNG.

The layouts (docs/images.md):

- class folders: ``data.source: data/train/`` (or a glob, ``data/train/*/*.png``); the folder is the class;
- a folder (or glob) of images with a labels file: ``data.images.labels: data/labels.csv`` (or ``.parquet``),
  a column of file names (``data.images.file_column``, a path below the folder or a bare file name) and the
  target column;
- a Parquet (or any table source) with a column of PNG/JPEG bytes: ``data.images.column``.

Every image is decoded with Pillow and checked by ``data.checks.images`` (readable, not a bomb, the
declared size and channels). One that fails is named with its path and either left out (``on_error:
skip``, listed in the snapshot's profile under ``skipped``) or the whole collection is refused (``on_error:
refuse``, the default) with one line naming the files: nothing is stored then.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from tidal.core.errors import DataError, SourceError
from tidal.data.images.codec import CHANNELS, ImageProblem, canonicalise
from tidal.data.sources import read_source, resolve_source
from tidal.data.sources.images import IMAGE, LABEL, PATH, ImageFolderSource
from tidal.spec.model import DataSpec, ImageChecksSpec
from tidal.spec.source import source_label

#: How many bad files one refusal names before "and N more".
MAX_NAMED = 5


@dataclass(frozen=True)
class Skipped:
    """An image left out of a snapshot (``on_error: skip``): where it was and why."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


def is_image_data(data: DataSpec) -> bool:
    """Whether ``data`` names images: a ``data.images`` section, or a source the image source reads
    (no I/O)."""
    if data.images is not None:
        return True
    if not isinstance(data.source, str):  # an API ({http: ...}) gives a table, not image files
        return False
    try:
        return isinstance(resolve_source(data.source), ImageFolderSource)
    except SourceError:
        return False


def image_column(data: DataSpec) -> str:
    """The name of the column of images (``data.images.column``, ``image`` by default)."""
    return data.images.column if data.images is not None else IMAGE


def read_images(data: DataSpec, *, base_dir: Path) -> tuple[pd.DataFrame, list[Skipped]]:
    """The table of ``data``'s images, each canonical PNG, with the images left out and why.

    Columns: ``path`` (for files), the target, and the image column; every other column of a table source
    is kept. ``DataError`` (one line, naming the files) when ``data.checks.images.on_error`` is ``refuse``
    and an image cannot be used, or when none can."""
    column, checks = image_column(data), data.checks.images
    problems: list[Skipped] = []
    uri, shown = data.source, source_label(data.source)
    source = resolve_source(uri) if isinstance(uri, str) else None
    if isinstance(source, ImageFolderSource) and isinstance(uri, str):
        found = source.scan(uri, base_dir)
        problems += [Skipped(f"{name}/", "a class folder with no images") for name in found.empty_classes]
        df = source.read(uri, base_dir=base_dir, query=data.query)
        df = _labelled(df, data, base_dir, found.root, problems).rename(columns={IMAGE: column})
    else:
        df = read_source(data.source, base_dir=base_dir, query=data.query)
        if column not in df.columns:
            raise DataError(f"{shown} has no column {column!r} of images",
                            hint=f"set data.images.column to one of: {', '.join(map(str, df.columns[:20]))}")
    df, bad = canonical_images(df, column, checks)
    problems += bad
    if problems and checks.on_error == "refuse":
        raise refusal(problems)
    if len(df) == 0:
        raise DataError(f"none of the images in {shown} can be used: {_listed(problems)}",
                        hint="fix the files, or point data.source at usable images")
    return df.reset_index(drop=True), problems


def canonical_images(df: pd.DataFrame, column: str, checks: ImageChecksSpec) -> tuple[pd.DataFrame, list[Skipped]]:
    """``df`` with ``column`` as canonical PNG bytes and the rows whose image fails ``checks`` left out, and
    those rows (named by their ``path``, else ``row N``) with the reason."""
    paths = df[PATH].astype(str).tolist() if PATH in df.columns else [f"row {i}" for i in range(len(df))]
    out: list[bytes | None] = []
    problems: list[Skipped] = []
    for where, raw in zip(paths, df[column].tolist(), strict=True):
        reason = None
        try:
            if raw is None or (isinstance(raw, float) and raw != raw):
                raise ImageProblem("no image (null)")
            png, image = canonicalise(raw, max_pixels=checks.max_pixels)
            reason = _check(image.size, CHANNELS[image.mode], checks)
        except ImageProblem as exc:
            reason = exc.reason
        if reason is not None:
            problems.append(Skipped(where, reason))
            out.append(None)
        else:
            out.append(png)
    df = df.assign(**{column: pd.Series(out, index=df.index, dtype=object)})
    keep = df[column].notna()
    return df[keep], problems


def image_inputs(data: DataSpec, base_dir: Path) -> dict[str, Any]:
    """What the collect step's cache key needs beyond the source's files, for images: the image settings and
    the checks (``skip`` and ``refuse`` make different snapshots of the same files), and the labels file's
    size and time of change. Empty for a table."""
    if not is_image_data(data):
        return {}
    out: dict[str, Any] = {"images": data.images.model_dump() if data.images else None,
                           "image_checks": data.checks.images.model_dump()}
    if data.images is not None and data.images.labels is not None:
        labels = Path(data.images.labels) if Path(data.images.labels).is_absolute() else base_dir / data.images.labels
        stat = labels.stat() if labels.is_file() else None
        out["labels_file"] = {"path": str(labels), "size": stat.st_size if stat else None,
                              "mtime_ns": stat.st_mtime_ns if stat else None}
    return out


def skipped_note(profile: dict[str, Any]) -> list[str]:
    """The warning that a snapshot left images out (``on_error: skip``), naming them; empty when none were."""
    skipped = [Skipped(s["path"], s["reason"]) for s in profile.get("skipped") or []]
    if not skipped:
        return []
    n = len(skipped)
    return [f"{n} image{'s' if n > 1 else ''} left out (data.checks.images.on_error: skip): {_listed(skipped)}"]


def _check(size: tuple[int, int], channels: int, checks: ImageChecksSpec) -> str | None:
    if checks.size is not None and tuple(size) != tuple(checks.size):
        want = "x".join(map(str, checks.size))
        return f"{size[0]}x{size[1]} pixels, expected {want} (data.checks.images.size)"
    if checks.channels is not None and channels != checks.channels:
        plural = "s" if channels > 1 else ""
        return f"{channels} channel{plural}, expected {checks.channels} (data.checks.images.channels)"
    return None


def refusal(problems: list[Skipped]) -> DataError:
    """The one-line refusal naming the images that cannot be used."""
    n = len(problems)
    return DataError(f"{n} image{'s' if n > 1 else ''} cannot be used: {_listed(problems)}",
                     hint="fix or remove them, or set data.checks.images.on_error: skip to leave them out")


def _listed(problems: list[Skipped]) -> str:
    named = "; ".join(f"{p.path}: {p.reason}" for p in problems[:MAX_NAMED])
    return named + (f"; and {len(problems) - MAX_NAMED} more" if len(problems) > MAX_NAMED else "")


def _labelled(df: pd.DataFrame, data: DataSpec, base_dir: Path, root: Path, problems: list[Skipped]) -> pd.DataFrame:
    """``df`` (path, label, image) with its labels in the target column: from the class folders, or from
    ``data.images.labels`` when it is set."""
    spec = data.images
    if spec is None or spec.labels is None:
        unlabelled = df[LABEL].isna()
        if unlabelled.any():
            first = df.loc[unlabelled, PATH].iloc[0]
            raise DataError(f"{int(unlabelled.sum())} images have no class folder (such as {root / first})",
                            hint="put each image in a folder named after its class, or name a labels file "
                                 "in data.images.labels")
        return df.rename(columns={LABEL: data.target})
    labels = read_source(spec.labels, base_dir=base_dir)
    for name, what in ((spec.file_column, "data.images.file_column"), (data.target, "data.target")):
        if name not in labels.columns:
            raise DataError(f"the labels file {spec.labels} has no column {name!r} ({what})",
                            hint=f"its columns are: {', '.join(map(str, labels.columns[:20]))}")
    names = labels[spec.file_column].astype(str).map(lambda s: PurePosixPath(s.replace("\\", "/")).as_posix())
    if names.duplicated().any():
        raise DataError(f"the labels file {spec.labels} names {names[names.duplicated()].iloc[0]!r} twice",
                        hint="give each image one label")
    by_name: dict[str, Any] = dict(zip(names, labels[data.target], strict=True))
    found: list[Any] = []
    missing: list[bool] = []
    for path in df[PATH]:
        key = path if path in by_name else PurePosixPath(path).name
        if key not in by_name:
            problems.append(Skipped(path, f"no label in {spec.labels}"))
        missing.append(key not in by_name)
        found.append(by_name.get(key))
    out = df.drop(columns=[LABEL]).assign(**{data.target: pd.Series(found, index=df.index, dtype=object)})
    out = out[~pd.Series(missing, index=df.index)]
    target = labels[data.target]
    with contextlib.suppress(TypeError, ValueError):  # keep the labels file's type (integers stay integers)
        out[data.target] = out[data.target].astype(target.dtype)
    return out[[PATH, data.target, IMAGE]]


__all__ = ["MAX_NAMED", "Skipped", "canonical_images", "image_column", "image_inputs", "is_image_data", "read_images",
           "refusal", "skipped_note"]
