"""What crosses a package border about a model version: its :class:`Signature` and its :class:`Lineage`.

Both are stored as JSON objects (``to_dict``/``from_dict``), as the plain dicts they replace were, so
versions registered by an earlier tidal read back unchanged; keys this code does not know are kept in
``extra`` and written back, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

#: The name of a column built from known labels (tidal.data.history): label_lag_1, label_share_48, ...
LABEL_FEATURE = re.compile(r"label_(lag|share|mean)_[0-9]+(_.+)?$")

#: The kinds of an input column (see :mod:`tidal.data.schema`); ``image``: encoded images (PNG/JPEG).
COLUMN_KINDS = ("numeric", "integer", "boolean", "categorical", "datetime", "image")


@dataclass(frozen=True)
class ImageSpec:
    """An ``image`` input column: what a served image must be (see docs/images.md, "Serving").

    ``shape`` is (channels, height, width) of the pixels the model's prepare step makes of an image and
    ``dtype`` theirs as a client sends them as arrays (``uint8``: 0-255). ``size`` is ``[width, height]``
    when every training image had that one size (a served image must have it too), None when they varied
    (any size is resized as in training). ``channels`` are the channel counts the training images had
    (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA): a served image must have one of them.
    """

    shape: tuple[int, int, int]
    dtype: str = "uint8"
    size: tuple[int, int] | None = None
    channels: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype, "size": None if self.size is None else list(self.size),
                "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageSpec:
        c, h, w = (int(v) for v in data.get("shape") or (0, 0, 0))
        size = data.get("size")
        return cls(shape=(c, h, w), dtype=str(data.get("dtype", "uint8")),
                   size=None if not size else (int(size[0]), int(size[1])),
                   channels=tuple(int(v) for v in data.get("channels") or ()))


@dataclass(frozen=True)
class TensorSpec:
    """A tensor input: its shape (``None`` for a free dimension, such as the batch) and dtype (``float32``)."""

    shape: tuple[int | None, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(shape=tuple(data.get("shape") or ()), dtype=str(data.get("dtype", "float32")))


@dataclass(frozen=True)
class Signature:
    """The inputs a model version takes and what it answers.

    ``columns`` maps each input column, in the order the model takes them, to its kind (one of
    :data:`COLUMN_KINDS`); ``tensors`` names tensor inputs instead (images), each with its shape and dtype.
    ``target`` is the column it predicts, ``classes`` a classifier's classes in the order of its
    probabilities (None for a regressor), ``task`` ``classification`` or ``regression``.
    """

    columns: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    classes: list[Any] | None = None
    task: str | None = None
    tensors: dict[str, TensorSpec] = field(default_factory=dict)
    #: ``prepare.label_features`` (``{"lags": [...], "windows": [...]}``) when some columns are built from the
    #: labels already known (tidal.data.history): a server fills them from its log when a request has none.
    label_features: dict[str, list[int]] | None = None
    #: ``image`` columns: what a served image must be (shape, dtype, size, channels).
    images: dict[str, ImageSpec] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def derived(self) -> list[str]:
        """The input columns built from known labels (``label_*``), which a client need not send."""
        return [c for c in self.columns if LABEL_FEATURE.match(c)] if self.label_features else []

    @property
    def names(self) -> list[str]:
        """The input column names, in order."""
        return list(self.columns)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.extra, "columns": dict(self.columns), "target": self.target,
                               "classes": None if self.classes is None else list(self.classes)}
        if self.task is not None:
            out["task"] = self.task
        if self.label_features:
            out["label_features"] = {k: list(v) for k, v in self.label_features.items()}
        if self.tensors:
            out["tensors"] = {name: t.to_dict() for name, t in self.tensors.items()}
        if self.images:
            out["images"] = {name: i.to_dict() for name, i in self.images.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, task: str | None = None) -> Signature:
        """The signature stored as ``data``; ``task`` fills it in where the stored one has none."""
        data = dict(data or {})
        classes = data.pop("classes", None)
        tensors = data.pop("tensors", None) or {}
        label_features = data.pop("label_features", None)
        images = data.pop("images", None) or {}
        return cls(columns={str(c): str(k) for c, k in (data.pop("columns", None) or {}).items()},
                   target=data.pop("target", None), classes=None if classes is None else list(classes),
                   task=data.pop("task", None) or task,
                   tensors={name: TensorSpec.from_dict(t) for name, t in tensors.items()},
                   label_features={str(k): [int(n) for n in v] for k, v in label_features.items()}
                   if label_features else None,
                   images={str(name): ImageSpec.from_dict(i) for name, i in images.items()}, extra=data)


@dataclass(frozen=True)
class Lineage:
    """Where a model version comes from: the run, the data snapshots, the spec, the code and environment.

    ``train``/``holdout`` are the digests of the snapshots it was fitted and judged on; a version refitted
    after its gate on both (``refit``) names the model that passed the gate in ``gated_model``.
    ``source`` says where a local data source was read (``uri``, ``path``, ``outside_project``).
    ``continued_from`` names the version (``{"name", "version"}``) whose fitted pipeline this one continued
    (``retrain.mode: incremental``); ``train``/``holdout`` are then the new rows only.
    """

    run_id: str | None = None
    snapshot: str | None = None
    train: str | None = None
    holdout: str | None = None
    spec_digest: str | None = None
    git: dict[str, Any] | None = None
    environment_digest: str | None = None
    seed: int | None = None
    estimator: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    gated_model: str | None = None
    refit: str | None = None
    source: dict[str, Any] | None = None
    continued_from: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def trained_on(self) -> list[str]:
        """The digests of every snapshot the model was fitted on (the holdout too, when refitted)."""
        return [d for d in (self.train, self.holdout if self.refit else None) if d]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (value is None and f.name in _OPTIONAL_KEYS):
                continue
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Lineage:
        data = dict(data or {})
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: data.pop(k) for k in list(data) if k in known}
        if values.get("params") is None:
            values["params"] = {}
        return cls(**values, extra=data)


#: Lineage keys written only when set (a version that was not refitted has no ``gated_model``).
_OPTIONAL_KEYS = frozenset({"gated_model", "refit", "source", "continued_from"})


__all__ = ["COLUMN_KINDS", "LABEL_FEATURE", "ImageSpec", "Lineage", "Signature", "TensorSpec"]
