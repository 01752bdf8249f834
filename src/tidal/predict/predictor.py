"""Predictors: a model version applied to checked JSON rows, by the generic path or the fast path.

- :class:`GenericPredictor` builds a DataFrame the way training did (``as_model_input``: signature
  column order, categoricals as objects with NaN for nulls) and calls the pipeline's ``predict`` and
  ``predict_proba``. It serves any model, at about 3.5 ms a row for the Elec2 champion. A classifier
  whose ``predict`` is the likeliest class of its ``predict_proba`` (as scikit-learn's forests and networks
  and tidal's torch classifier compute it) is run once instead: the labels are ``classes_[argmax(proba)]``
  (:func:`proba_labels`), used only when they are exactly ``predict``'s on every check below; a row whose
  two likeliest classes tie still gets ``predict``'s own answer.
- :class:`~tidal.predict.images.ImagePredictor` serves a (prepare.images, network) pipeline: the images the
  request's checks decoded, prepared and run through the network once, with no DataFrame.
- :class:`FastPredictor` applies the fitted ``prepare`` step with NumPy alone
  (:mod:`tidal.predict.features`), then the estimator on the matrix; a HistGradientBoosting estimator is
  evaluated by :class:`~tidal.predict.trees.CompiledTrees` for small requests, and by its own Cython code,
  once instead of twice, for large ones. About 0.07 ms a row for the same model. An XGBoost or LightGBM
  estimator is called once per request, through its library's own booster
  (:mod:`tidal.predict.boosters`), instead of its ``predict`` and then its ``predict_proba``.

:func:`build_predictor` runs at load time (in the background, before a version serves): it checks that
the version answers sample rows made from its reference profile, finds which columns may be null (the
model was run with each of them missing), and uses the fast path only when it gives bit-for-bit the
generic path's predictions and probabilities on every check: whole batches, one row at a time, a batch
large enough for the big-request path, missing values and unseen categories. The reference of every
check is the generic path calling both ``predict`` and ``predict_proba``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
from scipy.special import expit

from tidal.core.errors import ServingError
from tidal.core.signature import Signature
from tidal.data.prepare import NUMERIC_KINDS
from tidal.predict.boosters import booster_scorer
from tidal.predict.features import FeatureEncoder, compile_prepare
from tidal.predict.inputs import InputSchema
from tidal.predict.samples import UNSEEN, sample_rows
from tidal.predict.trees import CompiledTrees

Rows = Sequence[Mapping[str, Any]]
Arrays = tuple[np.ndarray, np.ndarray | None]

#: Up to this many rows, HistGradientBoosting runs on the compiled trees; above it scikit-learn's own
#: per-tree loop is cheaper (measured crossover: about 30 rows for 200 trees).
COMPILED_MAX_ROWS = 24
_HGB = frozenset({"HistGradientBoostingClassifier", "HistGradientBoostingRegressor"})


class ModelCheckFailed(ServingError):
    """A model version that does not answer its own sample rows: it must not serve."""


class Predictor(Protocol):
    """Checked rows in, predictions (and class probabilities for a classifier) out."""

    path: str

    def arrays(self, rows: Rows) -> Arrays:
        """Predictions and probabilities as arrays (probabilities None for a regressor)."""
        ...


def to_json(out: Arrays) -> tuple[list[Any], list[list[float]] | None]:
    """Predictions and probabilities as plain Python values, ready for JSON."""
    pred, proba = out
    return pred.tolist(), None if proba is None else proba.tolist()


def proba_labels(classes: np.ndarray, proba: np.ndarray, predict: Any, X: Any) -> np.ndarray:
    """The likeliest class of each row, ``classes[argmax(proba)]``; a row whose top probability is not
    strictly above the others (a tie, or NaN) is answered by ``predict`` on that row of ``X`` instead, as
    ``predict`` may break ties its own way (a binary model's threshold on its decision function)."""
    top = np.argmax(proba, axis=1)
    labels: np.ndarray = np.asarray(classes)[top]
    if proba.shape[1] > 1 and len(proba):
        # A row is sure when its top probability is the only one equal to it. No copy of the matrix: on the
        # request path, a copy cost 18x the comparison for 1,000 binary rows. NaN compares unequal to all,
        # and argmax picks a NaN first, so a row with a NaN is unsure in both branches.
        if proba.shape[1] == 2:
            unsure = ~(np.abs(proba[:, 0] - proba[:, 1]) > 0)
        else:
            best = proba[np.arange(len(proba)), top]
            unsure = (proba == best[:, None]).sum(axis=1) != 1
        if unsure.any():
            picked = X.iloc[unsure] if hasattr(X, "iloc") else X[unsure]
            labels = labels.astype(object) if labels.dtype.kind in "OUS" else labels
            labels[unsure] = np.asarray(predict(picked))
    return labels


def one_pass_candidate(model: Any) -> str | None:
    """Why ``model``'s labels may not come from its probabilities, or None when they may (still checked
    against ``predict``): it needs ``classes_``, and a final estimator whose ``predict`` does not follow
    another rule by design (a support vector machine's probabilities are Platt-scaled, its labels come from
    its decision function)."""
    final = model.steps[-1][1] if hasattr(model, "steps") and model.steps else model
    if type(final).__name__ in ("SVC", "NuSVC"):
        return "the estimator's labels follow its decision function, not its probabilities"
    if getattr(model, "classes_", None) is None:
        return "the model has no classes_ to name the likeliest class"
    return None


class GenericPredictor:
    """Any model: a DataFrame built as training built it, then ``predict`` and ``predict_proba``, or, with
    ``labels_from_proba`` (a classifier), ``predict_proba`` alone and :func:`proba_labels`."""

    path = "generic"

    def __init__(self, model: Any, columns: Sequence[str], kinds: Mapping[str, str], classifier: bool, *,
                 labels_from_proba: bool = False) -> None:
        self.model = model
        self.columns = list(columns)
        self.kinds = dict(kinds)
        self.classifier = classifier
        self.labels_from_proba = labels_from_proba and classifier

    def frame(self, rows: Rows) -> Any:
        import pandas as pd

        data: dict[str, Any] = {}
        for c in self.columns:
            values = [row[c] for row in rows]
            kind = self.kinds.get(c)
            if kind in NUMERIC_KINDS:
                data[c] = np.array(values, dtype=np.float64)  # None → NaN, True → 1.0
            elif kind == "datetime":
                from tidal.data.codec import datetime_texts

                data[c] = datetime_texts(values)  # as in training: ISO text, aware values in UTC
            else:
                data[c] = np.array([np.nan if v is None else v for v in values], dtype=object)
        return pd.DataFrame(data, columns=self.columns)

    def arrays(self, rows: Rows) -> Arrays:
        X = self.frame(rows)
        if self.labels_from_proba:
            probs = np.asarray(self.model.predict_proba(X), dtype=np.float64)
            return proba_labels(self.model.classes_, probs, self.model.predict, X), probs
        pred = np.asarray(self.model.predict(X))
        proba = np.asarray(self.model.predict_proba(X), dtype=np.float64) if self.classifier else None
        return pred, proba


class FastPredictor:
    """The compiled ``prepare`` step, then the estimator on a NumPy matrix (see the module docstring)."""

    path = "fast"

    def __init__(self, encoder: FeatureEncoder, estimator: Any, classifier: bool, *, fortran: bool = False) -> None:
        self.encoder = encoder
        self.estimator = estimator
        self.classifier = classifier
        # The memory layout of the matrix handed to the estimator: a BLAS product (a linear model) can
        # round differently over a column-major matrix, which is what the DataFrame path gives it.
        self.fortran = fortran
        self.trees: CompiledTrees | None = None
        #: labels from predict_proba alone (see proba_labels), set by build_predictor once checked
        self.labels_from_proba = False
        self._hgb = type(estimator).__name__ in _HGB
        #: XGBoost and LightGBM: one call into the library gives both outputs (tidal.predict.boosters)
        self.booster = None if self._hgb else booster_scorer(estimator, classifier)
        # Two classes and the logit link: P(class 1) is scipy's expit of the raw prediction, which is what
        # scikit-learn's loss computes under three layers of array-API dispatch (a sizeable part of a
        # one-row request once its caches are cold).
        loss = getattr(estimator, "_loss", None)
        self._binary_logit = (self._hgb and classifier and type(loss).__name__ == "HalfBinomialLoss"
                              and type(getattr(loss, "link", None)).__name__ == "LogitLink")
        if self._hgb:
            try:
                self.trees = CompiledTrees(estimator)
            except (ValueError, AttributeError):
                self.trees = None

    def arrays(self, rows: Rows) -> Arrays:
        X = self.encoder(rows)
        est = self.estimator
        if self.booster is not None:
            return self.booster(X)
        if not self._hgb:
            if self.fortran:
                X = np.asfortranarray(X)
            if self.labels_from_proba:
                probs = np.asarray(est.predict_proba(X), dtype=np.float64)
                return proba_labels(est.classes_, probs, est.predict, X), probs
            pred = np.asarray(est.predict(X))
            proba = np.asarray(est.predict_proba(X), dtype=np.float64) if self.classifier else None
            return pred, proba
        # One raw prediction serves both outputs; scikit-learn's predict and predict_proba would each
        # compute it. The formulas below are theirs (HistGradientBoostingClassifier.predict / _proba).
        small = self.trees is not None and len(rows) <= COMPILED_MAX_ROWS
        raw = self.trees.raw(X) if small else est._raw_predict(X)  # type: ignore[union-attr]
        if not self.classifier:
            return np.asarray(est._loss.link.inverse(raw.ravel())), None
        if self._binary_logit:
            proba = np.empty((raw.shape[0], 2), dtype=np.float64)
            proba[:, 1] = expit(raw[:, 0])
            proba[:, 0] = 1 - proba[:, 1]
        else:
            proba = np.asarray(est._loss.predict_proba(raw), dtype=np.float64)
        encoded = (raw.ravel() > 0).astype(int) if raw.shape[1] == 1 else np.argmax(raw, axis=1)
        return est.classes_[encoded], proba


class RelativeFastPredictor(FastPredictor):
    """The fast path of a relative-target regressor (``prepare.label_features.relative``: a
    ``RelativeRegressor`` around the pipeline): the change its pipeline predicts, on the fast path, plus each
    row's base read from the row, by the model's own rule (the first of its ``lags`` present, else its training
    mean). Like every fast path, used only when it gives the generic path's answers bit for bit."""

    def __init__(self, encoder: FeatureEncoder, estimator: Any, *, lags: Sequence[str], mean: float) -> None:
        super().__init__(encoder, estimator, classifier=False)
        self.lags, self.mean = list(lags), float(mean)

    def arrays(self, rows: Rows) -> Arrays:
        from tidal.train.relative import base_of

        change = np.asarray(super().arrays(rows)[0], dtype=np.float64)
        # None (a missing label) reads as NaN
        base = base_of([np.array([row[column] for row in rows], dtype=np.float64) for column in self.lags],
                       len(rows), self.mean)
        return base + change, None


@dataclass
class BuiltPredictor:
    """What :func:`build_predictor` made: the predictor to serve, the input schema (with the columns
    found nullable), and a report of the checks for ``GET /model`` and the log."""

    predictor: Predictor
    schema: InputSchema
    report: dict[str, Any] = field(default_factory=dict)


def build_predictor(model: Any, signature: Signature, profile: Mapping[str, Any] | None, *,
                    task: str, fast: bool = True) -> BuiltPredictor:
    """Check the model on sample rows and choose its predictor (see the module docstring).

    Raises :class:`ModelCheckFailed` when the model cannot answer its sample rows.
    """
    start = time.perf_counter()
    columns = signature.names
    if not columns:
        raise ModelCheckFailed("the version's signature lists no input columns")
    kinds = dict(signature.columns)
    if "image" in kinds.values():
        # what a served image must be: as recorded at registration, else (a version registered before tidal
        # recorded it) as its fitted image preparation and reference profile say
        from tidal.data.images.serving import image_specs

        signature = replace(signature, images={**image_specs(model, columns, kinds, profile), **signature.images})
    classifier = task == "classification" and hasattr(model, "predict_proba")
    generic = GenericPredictor(model, columns, kinds, classifier)
    rows = sample_rows(signature, profile)
    try:
        expected = generic.arrays(rows)
    except Exception as exc:
        raise ModelCheckFailed(f"the model fails on sample rows of its own training data: "
                               f"{type(exc).__name__}: {exc}") from exc
    if len(expected[0]) != len(rows) or (expected[1] is not None and expected[1].shape[0] != len(rows)):
        raise ModelCheckFailed("the model returned a different number of predictions than rows")
    nullable = _nullable(generic, rows[0], columns)
    schema = InputSchema(columns, kinds, nullable, signature.images)
    report: dict[str, Any] = {"check_rows": len(rows), "nullable": [c for c in columns if c in nullable]}
    predictor: Predictor = generic
    why = "fast path disabled"
    images = None
    if fast and schema.images:
        images, why = _image_candidate(model, schema, classifier, generic, rows)
        if images is not None:
            predictor = images
    if fast and images is None:
        candidate, why = _fast_candidate(model, kinds, classifier)
        if candidate is not None:
            mismatch = _mismatch(candidate, generic, rows, columns, kinds, nullable)
            if mismatch is not None and candidate.booster is not None:
                candidate.booster = None  # the estimator's own predict and predict_proba, on the matrix
                mismatch = _mismatch(candidate, generic, rows, columns, kinds, nullable)
            if mismatch is not None and not candidate._hgb:
                candidate.fortran = True  # the other memory layout (see FastPredictor.fortran)
                mismatch = _mismatch(candidate, generic, rows, columns, kinds, nullable)
            if mismatch is None:
                predictor, why = candidate, "identical to the generic path on every check"
            else:
                why = f"not used: {mismatch}"
    if classifier:
        predictor, report["labels"] = _one_pass(predictor, model, generic, rows, columns, kinds, nullable)
    report.update(path=predictor.path, fast_path=why, check_seconds=round(time.perf_counter() - start, 4))
    if isinstance(predictor, FastPredictor):
        report["compiled_trees"] = predictor.trees is not None
        report["booster"] = None if predictor.booster is None else predictor.booster.kind
    return BuiltPredictor(predictor=predictor, schema=schema, report=report)


def _one_pass(predictor: Predictor, model: Any, reference: GenericPredictor, rows: list[dict[str, Any]],
              columns: list[str], kinds: Mapping[str, str], nullable: set[str]) -> tuple[Predictor, str]:
    """``predictor``, made to take its labels from its probabilities (one pass of the model instead of two)
    when that gives exactly ``predict``'s labels on every check; and how its labels are made, in words."""
    if isinstance(predictor, FastPredictor) and (predictor._hgb or predictor.booster is not None):
        return predictor, "one pass of the model (the fast path's own formulas)"
    if (why := one_pass_candidate(model)) is not None:
        return predictor, f"predict (and predict_proba): {why}"
    candidate: Any = (GenericPredictor(model, columns, kinds, True, labels_from_proba=True)
                      if isinstance(predictor, GenericPredictor) else replace_labels(predictor))
    mismatch = _mismatch(candidate, reference, rows, columns, kinds, nullable, against="predict")
    if mismatch is not None:
        return predictor, f"predict (and predict_proba): the likeliest class of predict_proba {mismatch[3:]}"
    return candidate, "the likeliest class of predict_proba, one pass: identical to predict on every check"


def replace_labels(predictor: Any) -> Any:
    """A copy of a fast or image ``predictor`` that takes its labels from its probabilities."""
    import copy

    out = copy.copy(predictor)
    out.labels_from_proba = True
    return out


def _image_candidate(model: Any, schema: InputSchema, classifier: bool, reference: GenericPredictor,
                     rows: list[dict[str, Any]]) -> tuple[Predictor | None, str]:
    """The image path (:mod:`tidal.predict.images`) when it gives exactly the generic path's outputs on the
    sample rows as a request's checks leave them (the images decoded beside their canonical PNG), and on
    the PNG bytes alone."""
    from tidal.predict.errors import ApiError
    from tidal.predict.images import image_predictor

    candidate, why = image_predictor(model, schema, classifier)
    if candidate is None:
        return None, why
    checked = [dict(r) for r in rows]
    try:
        schema.check_rows(checked)
    except ApiError as exc:
        return None, f"not used: the sample images are refused by the checks ({exc.message})"
    columns = list(schema.columns)
    for what, batch in (("sample rows as checked", checked), ("sample rows", rows)):
        mismatch = _mismatch(candidate, reference, batch, columns, schema.kinds, set())
        if mismatch is not None:
            return None, f"not used: {mismatch} ({what})"
    return candidate, "the image path: identical to the generic path on every check"


def _nullable(generic: GenericPredictor, base: Mapping[str, Any], columns: list[str]) -> set[str]:
    """The columns the model answers for when they are null (tried all at once, else one by one)."""
    probes = [{**base, c: None} for c in columns]
    if _answers(generic, probes):
        return set(columns)
    return {c for c, probe in zip(columns, probes, strict=True) if _answers(generic, [probe])}


def _answers(predictor: Predictor, rows: Rows) -> bool:
    try:
        pred, proba = predictor.arrays(rows)
    except Exception:
        return False
    if pred.dtype.kind == "f" and not np.isfinite(pred).all():
        return False
    return proba is None or bool(np.isfinite(proba).all())


def _fast_candidate(model: Any, kinds: Mapping[str, str], classifier: bool) -> tuple[FastPredictor | None, str]:
    if type(model).__name__ == "RelativeRegressor" and not classifier:  # tidal.train.relative
        inner, why = _fast_candidate(model.estimator_, kinds, classifier)
        if inner is None:
            return None, why
        return RelativeFastPredictor(inner.encoder, inner.estimator, lags=model.lags, mean=model.mean_), ""
    steps = getattr(model, "steps", None)
    if type(model).__name__ != "Pipeline" or not steps or len(steps) != 2:
        return None, "not used: the model is not a (prepare, estimator) pipeline"
    prepare, estimator = steps[0][1], steps[1][1]
    if hasattr(estimator, "feature_names_in_"):
        return None, "not used: the estimator was fitted on named columns"
    encoder = compile_prepare(prepare, kinds)
    if encoder is None:
        return None, "not used: the prepare step has a transformer the fast path does not replay"
    if getattr(estimator, "n_features_in_", encoder.n_out) != encoder.n_out:
        return None, "not used: the prepare step's width does not match the estimator"
    return FastPredictor(encoder, estimator, classifier), ""


def _mismatch(fast: Predictor, generic: GenericPredictor, rows: list[dict[str, Any]], columns: list[str],
              kinds: Mapping[str, str], nullable: set[str], against: str = "the generic path") -> str | None:
    """Why ``fast`` differs from the generic path, or None when it never does."""
    with_nulls = rows + [{**rows[i % len(rows)], c: None} for i, c in enumerate(columns) if c in nullable]
    big = [with_nulls[i % len(with_nulls)] for i in range(COMPILED_MAX_ROWS + 16)]
    checks: list[tuple[str, Rows]] = [("a batch of sample rows", with_nulls), ("a large batch", big)]
    unseen = [{**rows[0], c: UNSEEN} for c in columns if kinds.get(c) == "categorical"]
    if unseen:
        checks.append(("unseen categories", unseen))
    for what, batch in checks:
        if not _same(fast, generic, batch):
            return f"it differs from {against} on {what}"
    for i, row in enumerate(with_nulls):
        # One row against one row: a linear model's matrix product may round a row differently alone than
        # inside a batch (BLAS blocks differently), in either path.
        if not _same(fast, generic, [row]):
            return f"it differs from {against} on sample row {i} alone"
    return None


def _outcome(predictor: Predictor, rows: Rows) -> Arrays | None:
    try:
        return predictor.arrays(rows)
    except Exception:
        return None  # compared as "raises"


def _same(a: Predictor, b: Predictor, rows: Rows) -> bool:
    """Whether both give bit-for-bit the same outputs on ``rows``, or both raise."""
    return _equal(_outcome(a, rows), _outcome(b, rows))


def _equal(a: Arrays | None, b: Arrays | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a[0].shape != b[0].shape or a[0].tolist() != b[0].tolist():
        return False
    pa, pb = a[1], b[1]
    if pa is None or pb is None:
        return pa is None and pb is None
    return pa.shape == pb.shape and bool(np.array_equal(pa, pb, equal_nan=True))


__all__ = [
    "COMPILED_MAX_ROWS",
    "BuiltPredictor",
    "FastPredictor",
    "GenericPredictor",
    "ModelCheckFailed",
    "Predictor",
    "RelativeFastPredictor",
    "build_predictor",
    "one_pass_candidate",
    "proba_labels",
    "to_json",
]
