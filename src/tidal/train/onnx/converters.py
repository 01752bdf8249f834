"""Converters from tidal's fitted pipelines to ONNX: a table keyed by flavor name.

Each converter takes the fitted model (tidal's ``(prepare, model)`` Pipeline) and its signature and returns
an ``onnx.ModelProto`` with **one input per signature column**, named after it, of shape ``[N, 1]``: a
``double`` tensor for a numeric, integer or boolean column (``prepare`` runs in float64 and the estimator in
float32, as in scikit-learn: :mod:`tidal.train.onnx.graphs`), a ``string`` tensor for a categorical or
datetime one (datetimes as the ISO text the model was trained on). A classifier's outputs are ``label`` and
``probabilities`` (a ``[N, classes]`` float tensor: no ZipMap), a regressor's ``variable``.

- ``sklearn``: skl2onnx converts the pipeline, the ``prepare`` ColumnTransformer included (each step on its
  own, merged into one graph).
- ``xgboost``, ``lightgbm``: the same, with onnxmltools' XGBoost and LightGBM converters registered into
  skl2onnx (``update_registered_converter``, skl2onnx's documented way to convert a Pipeline ending in
  an ``XGBClassifier`` or ``LGBMClassifier``).
- ``torch``: ``prepare`` the same way, the network through ``torch.onnx`` (:mod:`tidal.train.onnx.torch_graph`);
- more: :func:`register_converter`.

What a converter cannot convert raises :class:`CannotConvert` in one line naming the step
(``cannot convert step 'model' (HistGradientBoostingClassifier) to ONNX: ...``).

Missing categorical values: ONNX string tensors have no NaN, so a missing category is the empty string
``""``: the categorical imputers are converted as imputing ``""`` (a copy of the pipeline is changed for
the conversion, never the model itself), and :class:`~tidal.train.onnx.runtime.OnnxModel` sends ``""``
for a missing value. A category that really is ``""`` is therefore imputed in the ONNX form.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable
from typing import Any

from tidal.core.errors import TidalError
from tidal.core.signature import Signature
from tidal.data.prepare import NUMERIC_KINDS

#: The pip extra that installs the converters and onnxruntime.
ONNX_EXTRA = "onnx"
#: The ai.onnx opset the converters target (one every supported onnxruntime runs); ai.onnx.ml follows it.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
#: Metadata keys tidal writes into the model (``metadata_props``): what it needs to serve the graph alone.
META_INPUTS, META_TASK, META_CLASSES, META_FLAVOR = "tidal.inputs", "tidal.task", "tidal.classes", "tidal.flavor"

Converter = Callable[[Any, Signature], Any]
_CONVERTERS: dict[str, Converter] = {}


class CannotConvert(TidalError):
    """A model, or one step of its pipeline, that no ONNX converter can convert (nothing is written)."""


def onnx_module(name: str) -> Any:
    """``import name`` from the onnx extra, or a one-line error naming the extra."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise TidalError(f"ONNX needs the {ONNX_EXTRA} extra ({name} is not installed): "
                         f"pip install 'tidal[{ONNX_EXTRA}]'") from None


def register_converter(flavor: str, converter: Converter) -> None:
    """Convert models of ``flavor`` with ``converter(model, signature) -> onnx.ModelProto`` (one input per
    signature column, see the module docstring); a later registration replaces an earlier one."""
    _CONVERTERS[flavor] = converter


def converter_for(flavor: str) -> Converter:
    """The converter of ``flavor``, or :class:`CannotConvert` naming the flavors that have one."""
    try:
        return _CONVERTERS[flavor]
    except KeyError:
        raise CannotConvert(f"models of flavor {flavor!r} cannot be converted to ONNX: converters exist for "
                            f"{', '.join(sorted(_CONVERTERS))}") from None


def convert(model: Any, signature: Signature, *, flavor: str, task: str) -> bytes:
    """``model`` as ONNX bytes, with tidal's metadata (inputs, task, classes) in ``metadata_props``.

    The same fitted model gives the same bytes (the converters name nodes deterministically; tidal replaces the graph's
    random name and clears the producer's version, so that upgrading a converter alone does not change them)."""
    onnx_module("onnxruntime")  # serving needs it too: say so now, not when the bundle is served
    proto = converter_for(flavor)(model, signature)
    classes = getattr(model, "classes_", None) if task == "classification" else None
    labels = None if classes is None else [c.item() if hasattr(c, "item") else c for c in classes]
    meta = {META_INPUTS: json.dumps([[c, signature.columns[c]] for c in signature.names]),
            META_TASK: task, META_FLAVOR: flavor,
            META_CLASSES: json.dumps(labels)}
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_version = ""
    proto.graph.name = "tidal"  # skl2onnx names the graph with a random uuid (and the merge repeats it)
    proto.graph.doc_string = ""
    proto.doc_string = ""
    data: bytes = proto.SerializeToString(deterministic=True)
    return data


# -- the scikit-learn family (skl2onnx) ------------------------------------------------------------------

def _initial_types(signature: Signature, numbers: str = "float") -> list[tuple[str, Any]]:
    types = onnx_module("skl2onnx.common.data_types")
    number = types.DoubleTensorType if numbers == "double" else types.FloatTensorType
    return [(c, number([None, 1]) if signature.columns[c] in NUMERIC_KINDS
             else types.StringTensorType([None, 1])) for c in signature.names]


def _steps(model: Any) -> list[tuple[str, Any]]:
    """``(path, step)`` of every step of tidal's pipeline, innermost first within each: the transformers of
    ``prepare`` (``prepare/categorical/encode``), then ``model``."""
    out: list[tuple[str, Any]] = []
    steps = model.steps if type(model).__name__ == "Pipeline" else [("model", model)]
    for name, step in steps:
        for sub, est, _ in getattr(step, "transformers_", []):
            inner = est.steps if type(est).__name__ == "Pipeline" else [(None, est)]
            out.extend((f"{name}/{sub}" + (f"/{n}" if n else ""), e) for n, e in inner
                       if not isinstance(e, str))
        out.append((name, step))
    return out


def _for_strings(model: Any) -> Any:
    """A copy of ``model`` whose categorical imputers impute ``""`` (ONNX strings have no NaN; see above)."""
    model = copy.deepcopy(model)
    for _, step in _steps(model):
        if type(step).__name__ == "SimpleImputer" and getattr(step, "_fit_dtype", None) is not None \
                and step._fit_dtype.kind == "O" and not isinstance(step.missing_values, str):
            step.missing_values = ""
    return model


def _register_boosters() -> None:
    """Register onnxmltools' converters for the XGBoost and LightGBM estimators into skl2onnx (once)."""
    skl2onnx = onnx_module("skl2onnx")
    shapes = onnx_module("skl2onnx.common.shape_calculator")
    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        import xgboost

        from tidal.train.flavors.xgboost_labels import LabelledXGBClassifier
    except ImportError:
        pass
    else:
        xgb = onnx_module("onnxmltools.convert.xgboost.operator_converters.XGBoost").convert_xgboost
        for cls in (xgboost.XGBClassifier, LabelledXGBClassifier, xgboost.XGBRFClassifier):
            skl2onnx.update_registered_converter(cls, f"XGBoost{cls.__name__}",
                                                 shapes.calculate_linear_classifier_output_shapes, xgb,
                                                 options=options)
        for cls in (xgboost.XGBRegressor, xgboost.XGBRFRegressor):
            skl2onnx.update_registered_converter(cls, f"XGBoost{cls.__name__}",
                                                 shapes.calculate_linear_regressor_output_shapes, xgb)
    try:
        import lightgbm
    except ImportError:
        pass
    else:
        lgb = onnx_module("onnxmltools.convert.lightgbm.operator_converters.LightGbm").convert_lightgbm
        skl2onnx.update_registered_converter(lightgbm.LGBMClassifier, "LightGbmLGBMClassifier",
                                             shapes.calculate_linear_classifier_output_shapes, lgb, options=options)
        skl2onnx.update_registered_converter(lightgbm.LGBMRegressor, "LightGbmLGBMRegressor",
                                             shapes.calculate_linear_regressor_output_shapes, lgb,
                                             options={"split": None})


def _known(step: Any) -> bool:
    """Whether skl2onnx has a converter registered for ``step``'s class."""
    ops = onnx_module("skl2onnx._supported_operators")
    return type(step) in ops.sklearn_operator_name_map


def _why(exc: Exception) -> str:
    text = " ".join(str(exc).split()).split(" with name=")[0]  # skl2onnx appends the node's whole attributes
    return f"{type(exc).__name__}: " + (text[:160] + "..." if len(text) > 160 else text)


def _convert_pipeline(model: Any, signature: Signature) -> Any:
    """A tidal pipeline through skl2onnx (the sklearn, xgboost and lightgbm converters)."""
    skl2onnx = onnx_module("skl2onnx")
    _register_boosters()
    steps = _steps(model)
    for path, step in steps:
        if not _known(step):
            raise CannotConvert(f"cannot convert step {path!r} ({type(step).__name__}) to ONNX: skl2onnx has no "
                                "converter for it", hint="serve this model with deploy.runtime: native")
    copied = _for_strings(model)
    final = copied.steps[-1][1] if hasattr(copied, "steps") else copied
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else None
    if not (hasattr(copied, "steps") and len(copied.steps) == 2):  # not tidal's (prepare, model): one piece
        return _step("model", final, lambda: skl2onnx.convert_sklearn(
            copied, initial_types=_initial_types(signature), options=options, target_opset=TARGET_OPSET))
    from tidal.train.onnx import graphs

    # each step on its own (so that a failure names it), prepare in float64 as scikit-learn runs it
    (head_name, prepare), (name, estimator) = copied.steps
    width = int(getattr(estimator, "n_features_in_", 0)) or None
    head = _step(head_name, prepare, lambda: graphs.prepare_graph(
        prepare, _initial_types(signature, numbers="double"), width))
    tail = _step(name, estimator, lambda: graphs.estimator_graph(estimator, width, options))
    return _step(name, estimator, lambda: graphs.two_stage(head, tail))


def _step(name: str, step: Any, make: Callable[[], Any]) -> Any:
    """``make()``, or :class:`CannotConvert` naming the step ``name`` when it raises."""
    try:
        return make()
    except Exception as exc:
        raise CannotConvert(f"cannot convert step {name!r} ({type(step).__name__}) to ONNX: {_why(exc)}",
                            hint="serve this model with deploy.runtime: native") from exc


register_converter("sklearn", _convert_pipeline)
register_converter("xgboost", _convert_pipeline)
register_converter("lightgbm", _convert_pipeline)
# torch: tidal.train.onnx.torch_graph registers its converter (prepare through skl2onnx, the network through torch.onnx)

__all__ = ["ONNX_EXTRA", "CannotConvert", "Converter", "convert", "converter_for", "onnx_module",
           "register_converter"]
