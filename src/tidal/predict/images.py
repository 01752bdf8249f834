"""The image path: a (``prepare.images``, network) pipeline applied to a request's images without a DataFrame.

The generic path builds a DataFrame of the checked rows' canonical PNGs, and the pipeline's ``predict`` and
``predict_proba`` each decode them again, prepare them and run the network. Here the images the request's
checks decoded already (:class:`~tidal.data.images.serving.CheckedImage` keeps the decoded image beside its
canonical PNG; bytes without one are decoded) are prepared once by the fitted
:class:`~tidal.data.images.prepare.ImagePreprocessor` (:meth:`~ImagePreprocessor.matrix`: the very code its
``transform`` runs after decoding) and handed to the estimator as one float32 matrix: ``predict_proba``,
and ``predict`` unless :func:`~tidal.predict.predictor.build_predictor` found that the likeliest class gives
its labels exactly. The builder serves this path only when it gives bit for bit the generic path's outputs
on every check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tidal.predict.inputs import InputSchema

Rows = Sequence[Mapping[str, Any]]
Arrays = tuple[np.ndarray, np.ndarray | None]


class ImagePredictor:
    """One image column, prepared by ``prepare`` (a fitted ImagePreprocessor), then ``estimator``."""

    path = "images"

    def __init__(self, prepare: Any, estimator: Any, column: str, classifier: bool) -> None:
        self.prepare = prepare
        self.estimator = estimator
        self.column = column
        self.classifier = classifier
        #: labels from predict_proba alone (see proba_labels), set by build_predictor once checked
        self.labels_from_proba = False

    def arrays(self, rows: Rows) -> Arrays:
        from tidal.data.images.serving import decoded_image
        from tidal.predict.predictor import proba_labels

        X = self.prepare.matrix([decoded_image(row[self.column]) for row in rows])
        est = self.estimator
        if not self.classifier:
            return np.asarray(est.predict(X)), None
        proba = np.asarray(est.predict_proba(X), dtype=np.float64)
        if self.labels_from_proba:
            return proba_labels(est.classes_, proba, est.predict, X), proba
        return np.asarray(est.predict(X)), proba


def image_predictor(model: Any, schema: InputSchema, classifier: bool) -> tuple[ImagePredictor | None, str]:
    """An :class:`ImagePredictor` for ``model``, or None and why not: it must be a two-step pipeline whose
    first step is a fitted ImagePreprocessor of the schema's one column, an image column."""
    from tidal.data.images.prepare import ImagePreprocessor

    steps = getattr(model, "steps", None)
    if type(model).__name__ != "Pipeline" or not steps or len(steps) != 2:
        return None, "not used: the model is not a (prepare, estimator) pipeline"
    prepare, estimator = steps[0][1], steps[1][1]
    if type(prepare) is not ImagePreprocessor or not hasattr(prepare, "image_shape_"):
        return None, "not used: the prepare step is not tidal's fitted image preparation"
    if len(schema.columns) != 1 or schema.columns[0] not in schema.images:
        return None, "not used: the model takes other columns besides one image"
    if getattr(estimator, "n_features_in_", prepare.n_features_out_) != prepare.n_features_out_:
        return None, "not used: the image preparation's width does not match the estimator"
    return ImagePredictor(prepare, estimator, schema.columns[0], classifier), ""


__all__ = ["ImagePredictor", "image_predictor"]
