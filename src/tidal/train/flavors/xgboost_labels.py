"""An XGBoost classifier for any class labels (imported only where xgboost is installed).

XGBoost 2 and later learn the class codes ``0..n-1`` only, and answer with codes. The XGBoost flavor fits a
classifier whose labels are anything else (strings, booleans, ``{1, 2}``) on the codes of its sorted
labels, as this class, which then answers with the labels: ``classes_`` is the labels and ``predict``
maps codes back, so it serves, scores and takes feedback like any scikit-learn classifier.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xgboost import XGBClassifier


class LabelledXGBClassifier(XGBClassifier):
    """``XGBClassifier`` whose classes are ``labels_`` (set once fitted on their codes)."""

    @property
    def classes_(self) -> np.ndarray:
        labels = self.__dict__.get("labels_")
        return np.arange(self.n_classes_) if labels is None else np.asarray(labels)

    def predict(self, X: Any, **kwargs: Any) -> Any:
        codes = super().predict(X, **kwargs)
        labels = self.__dict__.get("labels_")
        if labels is None or kwargs.get("output_margin"):
            return codes
        return np.asarray(labels)[np.asarray(codes, dtype=np.intp)]


__all__ = ["LabelledXGBClassifier"]
