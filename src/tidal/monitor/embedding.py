"""Drift on the network's own embedding: what an image model's penultimate layer makes of the window's images,
reduced to a few principal components and tested like any numeric feature.

    from tidal.monitor.embedding import embedder_of, fit_embedding
    embed = embedder_of(model, "image")                  # None unless the model's last step can ``embed``
    embedding = fit_embedding("image", reference_images, embed)   # PCA fitted on the reference's embeddings
    build_report(mv, predictions, spec.monitor, ..., embedding=embedding)   # image.emb1 ... image.emb3

The image statistics (:mod:`tidal.monitor.images`) say how the pictures changed (darker, blurred, turned);
the embedding says whether the *network* sees them differently: a change the statistics miss (other shapes,
another writer, a new kind of object at the same brightness) moves the activations the classifier reads.

**The reference.** At monitor time, not at training time: the version's training images (its ``train``
snapshot, up to :data:`~tidal.data.images.stats.REFERENCE_SAMPLE` of them, evenly spaced) go through the
version's model as the registry loads it for serving (safetensors weights, no pickle), and
:data:`COMPONENTS` principal components are fitted on their embeddings (numpy's SVD, each vector's sign fixed
as for the pixel components: the same images give the same components). Each component ``<column>.emb<k>``
gets the numeric profile any column gets, so the drift machinery (the test chosen by ``monitor.drift.method``,
its threshold, the drift share) judges it unchanged; the holdout baseline does not cover it (it is computed
at training time), so a component is judged by its test alone. Fitting costs one forward pass over the
reference (a tenth of a second for the digits): the loop keeps it per version (:class:`EmbeddingCache`).

**The window.** The served image itself, read back from the artifact store by the digest its log row keeps
(``tidal serve`` stores each image there once); where it is gone, an image of at most
:data:`~tidal.data.images.serving.THUMBNAIL` pixels a side is its own thumbnail, and a larger one counts as
missing (a thumbnail would be another input than the one the model answered). A frame of encoded images (a
snapshot's) is embedded as it is.

**Which models.** Those whose pipeline ends in an estimator with an ``embed`` method
(:meth:`tidal.nn.TorchEstimator.embed`: the input of the last linear layer, for ``mlp``, ``cnn`` and a
user's module alike) on a column of images; any other model has no embedding, and its report is as before.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: How many principal components of the embedding are monitored (``<column>.emb1`` ...).
COMPONENTS = 3
#: The fewest readable reference images the components are fitted on.
MIN_REFERENCE = 20
#: How many versions' references the loop keeps in memory at once.
CACHED_VERSIONS = 2

#: Images (encoded bytes, or None for one that cannot be read) → their embeddings, ``(rows, width)``.
Embed = Callable[[Sequence[bytes]], np.ndarray]


@dataclass(frozen=True)
class Embedding:
    """A version's embedding reference for one image column: the components fitted on its training images'
    embeddings (``mean``, ``vectors``), each component's numeric profile (``reference``: ``{"image.emb1":
    profile}``), and ``embed``, which makes the embedding of more images with the same model."""

    column: str
    embed: Embed
    mean: np.ndarray
    vectors: np.ndarray
    reference: dict[str, dict[str, Any]]
    images: int
    width: int
    #: the share of the embedding's variance over the reference each component carries
    explained: tuple[float, ...] = ()

    @property
    def names(self) -> list[str]:
        """The monitored components, ``<column>.emb1`` ...."""
        return list(self.reference)

    def components(self, images: Sequence[bytes | None]) -> pd.DataFrame:
        """One row per image, one float column per component; NaN for a missing image."""
        out = np.full((len(images), len(self.reference)), np.nan)
        present = [i for i, v in enumerate(images) if v is not None]
        if present:
            embedded = np.asarray(self.embed([v for v in images if v is not None]), dtype=np.float64)
            out[present] = (embedded - self.mean) @ self.vectors.T
        return pd.DataFrame(out, columns=self.names)

    def describe(self) -> dict[str, Any]:
        """What a report says of it (``body["embedding"]``)."""
        return {"column": self.column, "layer": "penultimate", "width": self.width, "components": self.names,
                "reference_images": self.images, "explained": [round(e, 4) for e in self.explained]}


def embedder_of(model: Any, column: str) -> Embed | None:
    """The function that embeds encoded images with ``model`` (a fitted scikit-learn pipeline whose last step
    has ``embed``, its other steps preparing the images), or None when the model has no embedding."""
    steps = getattr(model, "steps", None)
    if not steps or not callable(getattr(steps[-1][1], "embed", None)):
        return None
    prepare, last = model[:-1], steps[-1][1]

    def embed(images: Sequence[bytes]) -> np.ndarray:
        out = last.embed(prepare.transform(pd.DataFrame({column: list(images)})))
        if out is None:
            raise ValueError("the network has no linear layer to read an embedding from")
        return np.asarray(out)

    return embed


def fit_embedding(column: str, images: Sequence[Any], embed: Embed, k: int = COMPONENTS) -> Embedding | None:
    """The :class:`Embedding` of ``images`` (the reference: encoded image bytes; others are left out), or None
    with fewer than :data:`MIN_REFERENCE` of them."""
    from tidal.data.images.stats import REFERENCE_SAMPLE
    from tidal.data.profile import profile_column

    present = [bytes(v) for v in images if isinstance(v, bytes | bytearray | memoryview)]
    if len(present) < max(MIN_REFERENCE, k + 1):
        return None
    picks = np.unique(np.round(np.linspace(0, len(present) - 1, min(len(present), REFERENCE_SAMPLE))).astype(int))
    sample = [present[int(i)] for i in picks]
    E = np.asarray(embed(sample), dtype=np.float64)
    mean = E.mean(axis=0)
    _, singular, vt = np.linalg.svd(E - mean, full_matrices=False)
    vectors = vt[:k]
    total = float(np.square(singular).sum())
    explained = tuple(float(v) / total if total > 0 else 0.0 for v in np.square(singular[:k]))
    signs = np.sign(vectors[np.arange(vectors.shape[0]), np.abs(vectors).argmax(axis=1)])
    vectors = vectors * np.where(signs == 0, 1.0, signs)[:, None]
    projected = (E - mean) @ vectors.T
    names = [f"{column}.emb{j + 1}" for j in range(vectors.shape[0])]
    reference = {n: profile_column(pd.Series(projected[:, j])) for j, n in enumerate(names)}
    return Embedding(column=column, embed=embed, mean=mean, vectors=vectors, reference=reference,
                     images=len(sample), width=int(E.shape[1]), explained=explained)


def window_images(values: Sequence[Any], stored: Callable[[str], bytes | None] | None = None,
                  ) -> list[bytes | None]:
    """The encoded image of each window value (see the module docstring): bytes as they are; a logged image
    (``{"sha256", "size", "thumbnail"}``) read back by ``stored(digest)``, else its thumbnail when that is the
    whole image; None otherwise."""
    from tidal.data.images.serving import THUMBNAIL

    out: list[bytes | None] = []
    for v in values:
        if isinstance(v, bytes | bytearray | memoryview):
            out.append(bytes(v))
            continue
        if not isinstance(v, Mapping):
            out.append(None)
            continue
        digest = v.get("sha256")
        full = stored(digest) if stored is not None and isinstance(digest, str) else None
        if full is None and isinstance(v.get("thumbnail"), str) and _small(v.get("size"), THUMBNAIL):
            try:
                full = base64.b64decode(v["thumbnail"], validate=True)
            except (binascii.Error, ValueError):
                full = None
        out.append(full)
    return out


def _small(size: Any, limit: int) -> bool:
    return isinstance(size, list | tuple) and len(size) == 2 and all(isinstance(s, int) and 0 < s <= limit
                                                                      for s in size)


def add_embedding(embedding: Embedding, reference: Mapping[str, Any], frame: pd.DataFrame, judged: Sequence[str],
                  columns: Sequence[str], stored: Callable[[str], bytes | None] | None = None,
                  ) -> tuple[dict[str, Any], pd.DataFrame, list[str]]:
    """``reference``, ``frame`` and ``judged`` (:func:`~tidal.monitor.images.expand_images`' results) with the
    embedding's components added: all of them where the image column is judged (named, or every input by
    default), or those named alone (``monitor.drift.columns: [image.emb1]``)."""
    names = embedding.names
    if embedding.column in columns:
        wanted = [n for n in names if n not in judged]
    else:
        wanted = [n for n in names if n in columns]
    if not wanted and not any(n in judged for n in names):
        return dict(reference), frame, list(judged)
    ref = {**reference, **{n: embedding.reference[n] for n in names}}
    out = [c for c in judged if c not in names] + [n for n in names if n in judged or n in wanted]
    if embedding.column in frame.columns:
        table = embedding.components(window_images(frame[embedding.column].tolist(), stored))
        table.index = frame.index
        frame = pd.concat([frame.drop(columns=[c for c in names if c in frame.columns]), table], axis=1)
    return ref, frame, out


def embedding_panel(embedding: Embedding, frame: pd.DataFrame, judged: Sequence[str],
                    drift: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The panel rows of the judged components (``{"name", "reference", "window", "drifted"}``), shown in the
    report's Images section beside the image statistics. A component's reference mean is 0 by construction;
    its spread (``reference_std``) says how far a window mean is."""
    verdicts = {c.get("column"): bool(c.get("drifted")) for c in drift.get("columns") or []}
    rows = []
    for name in embedding.names:
        if name not in judged:
            continue
        window = frame[name].to_numpy(dtype=np.float64) if name in frame.columns else np.asarray([])
        window = window[np.isfinite(window)]
        prof = embedding.reference[name]
        # 0 up to rounding (the components are centred on the reference), shown as 0 rather than -3e-16
        rows.append({"name": name, "reference": round(float(prof.get("mean") or 0.0), 9),
                     "reference_std": prof.get("std"), "window": float(window.mean()) if window.size else None,
                     "drifted": verdicts.get(name, False)})
    return rows


@dataclass
class EmbeddingCache:
    """What ``make`` gave for the last :data:`CACHED_VERSIONS` versions a loop monitored, by (name, version):
    one forward pass over the reference per version, not per tick (a model without an embedding, or the
    reason one could not be made, is kept too)."""

    entries: MutableMapping[tuple[str, int], Any] = field(default_factory=dict)

    def get(self, key: tuple[str, int], make: Callable[[], Any]) -> Any:
        if key not in self.entries:
            while len(self.entries) >= CACHED_VERSIONS:
                self.entries.pop(next(iter(self.entries)))
            self.entries[key] = make()
        return self.entries[key]


__all__ = ["COMPONENTS", "Embed", "Embedding", "EmbeddingCache", "add_embedding", "embedder_of", "embedding_panel",
           "fit_embedding", "window_images"]
