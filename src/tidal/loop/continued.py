"""The loop's incremental retrain (``retrain.mode: incremental``): what it trains on and what it checks.

A refit retrain fits a new pipeline on the rebuilt training frame (:mod:`tidal.loop.rebuild`). An
incremental one starts from the champion's fitted pipeline and lets its estimator learn, by ``partial_fit``
(:func:`tidal.train.continued.continue_fit`), the rows the champion never saw: the labelled predictions
whose label arrived after the champion's training run started (:func:`new_rows`). The pipeline splits them
as it splits any training frame, so the gate judges challenger and champion on the newest of them, which
neither trained on; the challenger then takes exactly the refit challenger's way (gate, registration,
lineage, promotion, trials), its lineage naming the version it continued (``continued_from``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from tidal.core.entities import ModelVersion
from tidal.core.errors import DataError, TidalError
from tidal.data.history import drop_label_features
from tidal.loop.context import LoopContext
from tidal.loop.monitoring import note_unreadable
from tidal.loop.rebuild import cut_to_window, labelled_frame, reference_frame
from tidal.train.continued import check_incremental, check_parent, continue_fit, refuse_new_classes
from tidal.train.fit import TrainResult


def check_loop(ctx: LoopContext) -> None:
    """Before the loop runs with ``retrain.mode: incremental``: the spec's estimator has ``partial_fit``
    (:class:`~tidal.core.errors.SpecError` otherwise) and the champion, if there is one, is a pipeline that
    can be continued (:class:`~tidal.core.errors.TrainingError`). Nothing is stored either way."""
    spec = ctx.spec
    if spec.retrain.mode != "incremental":
        return
    check_incremental(spec.model, spec.retrain.mode)
    champion = ctx.registry.champion(spec.name)
    if champion is not None:
        check_parent(ctx.registry.load(champion), label(champion))


def trained_since(ctx: LoopContext, champion: ModelVersion) -> datetime:
    """When ``champion``'s training run started: every label that arrived later is new to it (its run's
    training rows were read before). Its registration time when the run is no longer stored."""
    try:
        return ctx.store.get_run(champion.run_id).started_at
    except TidalError:
        return champion.created_at


def new_rows(ctx: LoopContext, champion: ModelVersion) -> tuple[pd.DataFrame, str]:
    """The rows an incremental retrain learns: the labelled predictions whose label arrived after
    ``champion``'s training run started (:func:`trained_since`), in prediction time order, typed as the
    champion's training rows, cut to ``retrain.window``; with a line that says so. The source is not read
    again: the first champion learned it."""
    spec = ctx.spec
    since = trained_since(ctx, champion)
    labelled = [p for p in ctx.predictions.window(model=spec.name, labelled=True, archived=True)
                if p.label_time is not None and p.label_time > since]
    note_unreadable(ctx, spec.name)
    if not labelled:
        raise DataError(f"no prediction was labelled since {label(champion)} was trained, so an incremental "
                        "retrain has nothing to learn", hint="wait for feedback, or use retrain.mode: refit")
    frame = labelled_frame(labelled, reference_frame(ctx, champion), target=spec.data.target, time=spec.data.time,
                           images=ctx.artifacts)
    # label features are built again over these rows by the pipeline, as for a refit
    frame = cut_to_window(ctx, drop_label_features(frame, spec.prepare.label_features))
    if champion.signature.classes is not None:  # refused before a run is started for it (labels typed as trained)
        refuse_new_classes(frame[spec.data.target].tolist(), champion.signature.classes, label(champion))
    note = (f"loop increment: {len(frame)} rows for {label(champion)} to learn ({len(labelled)} labelled since "
            f"its training, {since.isoformat(timespec='seconds')}, before the window cut)")
    return frame.reset_index(drop=True), note


def continue_fit_step(model: Any, rows: pd.DataFrame, target: str, columns: list[str], kinds: dict[str, str],
                      parent: ModelVersion) -> TrainResult:
    """The pipeline's train step for a ``parent``: ``model`` (``parent``'s fitted pipeline, or the gated
    model continued from it) learns ``rows`` (:func:`~tidal.train.continued.continue_fit`) with the parent's
    classes."""
    return continue_fit(model, rows, target=target, columns=columns, kinds=kinds, classes=parent.signature.classes,
                        label=label(parent))


def continued_from(parent: ModelVersion | None) -> dict[str, Any] | None:
    """The lineage entry naming the version a model continued (None for a model fitted from scratch)."""
    return None if parent is None else {"name": parent.name, "version": parent.version}


def label(mv: ModelVersion) -> str:
    """``name:version``."""
    return f"{mv.name}:{mv.version}"


__all__ = ["check_loop", "continue_fit_step", "continued_from", "label", "new_rows", "trained_since"]
