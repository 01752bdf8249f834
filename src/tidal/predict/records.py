"""From checked rows to logged predictions, the same for every deployment (direct, canary, shadow).

:func:`predict_rows` runs a serving state's predictor and returns plain JSON values; :func:`make_records`
builds the :class:`~tidal.core.entities.Prediction` of each row as the prediction log stores it (an image as
its digest and a thumbnail, :func:`~tidal.data.images.serving.logged_image`); :func:`store_images` keeps the
image itself in the artifact store under that digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tidal.core.batches import PredictionBatch
from tidal.core.ports import ArtifactStore
from tidal.predict.predictor import to_json
from tidal.predict.state import ServingState

#: A ``/predict`` answer as plain values: the predictions, and the class probabilities (None: a regressor).
Answers = tuple[list[Any], list[list[float]] | None]


def predict_rows(state: ServingState, rows: Sequence[dict[str, Any]]) -> Answers:
    """``state``'s predictions (and probabilities) for ``rows``; raises what the model raises, or a
    RuntimeError when it does not answer one prediction per row."""
    predictions, probabilities = to_json(state.predictor.arrays(rows))
    if len(predictions) != len(rows):
        raise RuntimeError(f"the model returned {len(predictions)} predictions for {len(rows)} rows")
    return predictions, probabilities


def store_images(store: ArtifactStore, state: ServingState, rows: Sequence[dict[str, Any]], *,
                 known: StoredImages | None = None) -> int:
    """Put each image of ``rows`` (checked: canonical PNG bytes) into ``store`` by its sha256, the digest the
    log row keeps, so a retrain can rebuild its training rows from the log; the same image is stored once.
    Returns how many images were handed over (a no-op for those stored already). ``known``: see
    :func:`put_images`."""
    return put_images(store, [row[col] for col in state.schema.images for row in rows], known=known)


def put_images(store: ArtifactStore, images: Sequence[bytes], *, known: StoredImages | None = None) -> int:
    """Put each of ``images`` into ``store`` (see :func:`store_images`); how many were handed over. ``known``:
    the digests seen stored already (:class:`StoredImages`): those are skipped, and each put is added once it
    returned."""
    handed = 0
    for png in images:
        if known is None:
            store.put(png)
        else:
            digest = hashlib.sha256(png).hexdigest()
            if digest in known:
                continue
            store.put(png)
            known.add(digest)
        handed += 1
    return handed


def unstored_images(store: ArtifactStore, state: ServingState, rows: Sequence[dict[str, Any]], *,
                    known: StoredImages | None = None) -> list[bytes]:
    """The images of ``rows`` that ``store`` does not hold yet (by their sha256, as :func:`store_images` puts
    them): the only ones a put would write. ``known``: digests seen stored already, not looked up again (those
    found stored now are added to it)."""
    images = [row[col] for col in state.schema.images for row in rows]
    if known is None:
        return [png for png in images if not store.exists(hashlib.sha256(png).hexdigest())]
    missing = []
    for png in images:
        digest = hashlib.sha256(png).hexdigest()
        if digest in known:
            continue
        if store.exists(digest):
            known.add(digest)
        else:
            missing.append(png)
    return missing


class StoredImages:
    """The digests of images this process has seen in the artifact store (put, or found there): a server's
    later request with the same image neither looks it up nor writes it again. The store is addressed by
    content and keeps what it holds (nothing in tidal deletes an artifact), so a digest once stored stays
    stored; the set is only a memory of that, forgotten whole past :attr:`limit` digests."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._digests: set[str] = set()

    def __contains__(self, digest: object) -> bool:
        return digest in self._digests

    def __len__(self) -> int:
        return len(self._digests)

    def add(self, digest: str) -> None:
        if len(self._digests) >= self.limit:
            self._digests.clear()
        self._digests.add(digest)



def make_records(state: ServingState, rows: Sequence[dict[str, Any]], answers: Answers, ids: Sequence[str], *,
                 request_id: str | None, now: datetime, deployment: str = "direct",
                 served: bool = True) -> PredictionBatch:
    """The predictions of one request's rows, answered by ``state`` as ``deployment`` (``served`` False:
    computed but not returned, as a shadow challenger's answers): a column-wise batch, so that a request of
    a thousand rows does not build a thousand records (the prediction log stores the columns)."""
    predictions, probabilities = answers
    images = state.schema.images
    if images:  # the log keeps each image's digest and a thumbnail, not the image (docs/images.md, "Serving")
        from tidal.data.images.serving import logged_image

        rows = [{**row, **{c: logged_image(row[c]) for c in images}} for row in rows]
    return PredictionBatch(ids=ids, time=now, model=state.mv.name, version=state.mv.version, inputs=rows,
                           outputs=predictions, probas=probabilities, deployment=deployment, served=served,
                           request_id=request_id)


__all__ = ["Answers", "StoredImages", "make_records", "predict_rows", "put_images", "store_images",
           "unstored_images"]
