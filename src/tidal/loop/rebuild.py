"""The training frame of a retrain, rebuilt from the source and the labelled prediction log.

A retrain trains on the source again (unless ``retrain.include_source`` is false) and on every labelled
prediction: its logged inputs, its label as the target and its time as ``data.time``. The logged values
are JSON; :func:`labelled_frame` gives each column back the type it has in the source
(:mod:`tidal.data.codec`, :mod:`tidal.data.timecol`), so the two parts concatenate into columns of one
dtype each — a timestamp column that came back as text or as aware ``datetime`` objects beside the
source's naive ones could not be stored as a snapshot, and every retrain failed.

When the source is not part of the frame, the types come from the champion's training data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import pandas as pd

from tidal.core.entities import ModelVersion, Prediction
from tidal.core.errors import DataError
from tidal.core.ports import ArtifactStore
from tidal.data.codec import decode_like
from tidal.data.history import drop_label_features
from tidal.data.timecol import format_times, parse_times
from tidal.data.validate import kind_changes, raise_for_errors
from tidal.loop.context import LoopContext
from tidal.loop.monitoring import note_unreadable
from tidal.monitor.frame import inputs_frame


def labelled_frame(labelled: Sequence[Prediction], reference: pd.DataFrame, *, target: str,
                   time: str | None, images: ArtifactStore | None = None) -> pd.DataFrame:
    """The rows of ``labelled`` predictions (inputs, the label as ``target``, the prediction time as
    ``time``), each column with its type in ``reference`` (a frame read from the source). An image column
    is logged as its digest and a thumbnail: the image itself is read back from ``images`` (the artifact
    store the server put it in, by that digest); a DataError when it is not there."""
    rows = inputs_frame(labelled).reset_index(drop=True)
    rows[target] = pd.Series([p.label for p in labelled], dtype=object)
    for name in rows.columns:
        if name != target and _logged_images(rows[name]):
            rows[name] = _images_back(rows[name], labelled, name, images)
            continue
        if name in reference.columns and name != time:
            rows[name] = decode_like(rows[name], reference[name])
    if time is not None:
        times: list[datetime] = [p.time for p in labelled]
        rows[time] = format_times(times, reference[time]) if time in reference.columns else \
            pd.Series(times, dtype=object)
    return rows


def _logged_images(column: pd.Series) -> bool:
    """Whether ``column`` holds images as the prediction log keeps them (``{"sha256", "thumbnail", ...}``)."""
    return any(isinstance(v, dict) and "sha256" in v and "thumbnail" in v for v in column.tolist())


def _images_back(column: pd.Series, labelled: Sequence[Prediction], name: str,
                 images: ArtifactStore | None) -> pd.Series:
    """The canonical PNG bytes of each logged image, read from the artifact store by digest."""
    out: list[bytes] = []
    for value, prediction in zip(column.tolist(), labelled, strict=True):
        digest = value.get("sha256") if isinstance(value, dict) else None
        if images is None or not isinstance(digest, str) or not images.exists(digest):
            raise DataError(f"labelled prediction {prediction.id}: its {name!r} image ({str(digest)[:12]}...) is "
                            "not in the artifact store, and the prediction log keeps only its digest and a "
                            "thumbnail, so the retrain cannot train on it",
                            hint="serve with the project's artifact store (it keeps each served image), or "
                                 "add the labelled images to the source and set retrain.include_source")
        out.append(images.get(digest))
    return pd.Series(out, dtype=object)


def concat_typed(parts: Sequence[pd.DataFrame], reference: pd.DataFrame) -> pd.DataFrame:
    """``parts`` one under the other, each column with its type in ``reference``: pandas gives ``object``
    where two parts' categories differ, and such a column is cast back (the reference's categories first)."""
    if not parts:
        return pd.DataFrame(columns=reference.columns)
    frame = pd.concat(list(parts), ignore_index=True)
    for name in reference.columns:
        if name in frame.columns and frame[name].dtype != reference[name].dtype:
            frame[name] = decode_like(frame[name], reference[name]).set_axis(frame.index)
    return frame


def training_frame(ctx: LoopContext, source_frame: Callable[[], pd.DataFrame] | None = None
                   ) -> tuple[pd.DataFrame, str]:
    """The rows a retrain trains on: the source again (unless ``include_source`` is false) and every
    labelled prediction, typed as the source is, cut to ``retrain.window``; with a line that says so."""
    spec = ctx.spec
    data, policy = spec.data, spec.retrain
    name = spec.name
    source = _source(ctx, source_frame) if policy.include_source else None
    # archived predictions too (monitor.retention): a retrain learns from every label, old or late
    labelled = ctx.predictions.window(model=name, labelled=True, archived=True)
    note_unreadable(ctx, name)
    reference = source if source is not None else _champion_data(ctx)
    parts: list[pd.DataFrame] = [] if source is None else [source]
    if labelled:
        # the label features a server filled in are left out: the retrain builds them again over its own rows
        parts.append(drop_label_features(labelled_frame(labelled, reference, target=data.target, time=data.time,
                                                        images=ctx.artifacts), spec.prepare.label_features))
    frame = cut_to_window(ctx, concat_typed(parts, reference) if parts else pd.DataFrame())
    n_source = 0 if source is None else len(source)
    label = (f"loop window: {len(frame)} rows ({n_source} from the source, {len(labelled)} labelled "
             f"predictions before the window cut)")
    return frame.reset_index(drop=True), label


def cut_to_window(ctx: LoopContext, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (in time order) cut to ``retrain.window``: its rows of the last ``last_days``, then its
    newest ``last_rows``."""
    data, window = ctx.spec.data, ctx.spec.retrain.window
    if window.last_days is not None and data.time is not None and len(frame):
        times = parse_times(frame[data.time])
        frame = frame[times >= pd.Timestamp(ctx.clock.now()) - pd.Timedelta(days=window.last_days)]
    if window.last_rows is not None:
        frame = frame.tail(window.last_rows)
    return frame


def _source(ctx: LoopContext, source_frame: Callable[[], pd.DataFrame] | None) -> pd.DataFrame:
    """The source's rows, less ``data.drop`` (not trained on: those columns may change as they like); a
    feature whose type changed since the champion was trained is refused here, named in the source's own
    rows, rather than as a table that cannot be stored later."""
    if source_frame is not None:
        source = source_frame()
    else:
        from tidal.data.steps import read_table

        source = read_table(ctx.spec.data, base_dir=ctx.root)
    source = source.drop(columns=list(ctx.spec.data.drop), errors="ignore")
    if (champion := ctx.registry.champion(ctx.spec.name)) is not None:
        raise_for_errors(kind_changes(source, champion.signature.columns))
    return source


def _champion_data(ctx: LoopContext) -> pd.DataFrame:
    """The champion's training rows (their types are the source's), or an empty frame without a champion."""
    return reference_frame(ctx, ctx.registry.champion(ctx.spec.name))


def reference_frame(ctx: LoopContext, champion: ModelVersion | None) -> pd.DataFrame:
    """``champion``'s training rows (their types are the source's), or an empty frame without one."""
    from tidal.data.snapshot import read_snapshot_bytes

    digest = champion.lineage.train if champion is not None else None
    if digest is None:
        return pd.DataFrame()
    return read_snapshot_bytes(ctx.artifacts.get(digest))


__all__ = ["concat_typed", "cut_to_window", "labelled_frame", "reference_frame", "training_frame"]
