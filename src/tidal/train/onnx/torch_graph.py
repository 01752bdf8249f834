"""The torch flavor's ONNX converter: ``prepare`` through skl2onnx, the network through ``torch.onnx``.

A :class:`tidal.nn.TorchClassifier` or :class:`~tidal.nn.TorchRegressor` at the end of tidal's ``(prepare,
model)`` pipeline becomes one graph, as the booster pipelines do (:mod:`tidal.train.onnx.graphs`): ``prepare``
in float64, cast to float32, then the network as ``torch.onnx.export`` writes it (its TorchScript exporter,
``dynamo=False``: the dynamo exporter needs onnxscript, which tidal does not install), then what the estimator
does after the network in NumPy, as ONNX operators:

- a classifier: ``Softmax`` of the outputs as ``probabilities`` (float32; the estimator computes it in
  float64 from the same float32 outputs, so the two differ by ~1e-7, inside the parity tolerance) and the
  class label of the ``ArgMax`` (``Gather`` from the classes) as ``label``;
- a regressor: the outputs in float64, times ``y_scale_`` plus ``y_mean_`` (the target's standardisation),
  as ``variable``.

A network fitted on a bare matrix (registered from user code, no ``prepare``) takes the signature's numeric
columns, concatenated in order. The architecture is the user's ``forward``: what TorchScript cannot trace is
a :class:`~tidal.train.onnx.converters.CannotConvert` naming the step.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

from tidal.core.signature import Signature
from tidal.data.prepare import NUMERIC_KINDS
from tidal.train.onnx.converters import (
    TARGET_OPSET,
    CannotConvert,
    _for_strings,
    _initial_types,
    _step,
    onnx_module,
    register_converter,
)


def convert_torch(model: Any, signature: Signature) -> Any:
    """``model`` (tidal's pipeline ending in a torch estimator, or the estimator alone) as an ONNX ModelProto
    with one input per signature column (see :mod:`tidal.train.onnx.converters`)."""
    from tidal.train.onnx import graphs

    model = _for_strings(model)  # a copy whose categorical imputers impute "" (ONNX strings have no NaN)
    if type(model).__name__ == "Pipeline" and len(model.steps) == 2:
        (head_name, prepare), (name, estimator) = model.steps
    elif type(model).__name__ == "Pipeline":
        raise CannotConvert(f"cannot convert a pipeline of {len(model.steps)} steps ending in a network to ONNX: "
                            "tidal converts (prepare, model) or the network alone",
                            hint="serve this model with deploy.runtime: native")
    else:
        head_name, prepare, name, estimator = "", None, "model", model
    width = int(getattr(estimator, "n_features_in_", 0))
    if prepare is not None:
        head = _step(head_name, prepare, lambda: graphs.prepare_graph(
            prepare, _initial_types(signature, numbers="double"), width))
    else:
        head = _step("model", estimator, lambda: _columns_graph(signature, width))
    tail = _step(name, estimator, lambda: _network_graph(estimator, width))
    return _step(name, estimator, lambda: graphs.two_stage(head, tail))


def _columns_graph(signature: Signature, width: int) -> Any:
    """Inputs ``[N, 1]`` double per column, concatenated and cast to float32 as ``features_float32``."""
    onnx = onnx_module("onnx")
    helper, T = onnx.helper, onnx.TensorProto
    names = list(signature.names)
    if len(names) != width or any(signature.columns[c] not in NUMERIC_KINDS for c in names):
        raise ValueError(f"a network without prepare takes {width} numbers, and the signature has "
                         f"{len(names)} columns, not all numeric")
    nodes = [helper.make_node("Concat", names, ["features64"], axis=1, name="columns"),
             helper.make_node("Cast", ["features64"], ["features_float32"], to=T.FLOAT, name="to_float32")]
    graph = helper.make_graph(nodes, "columns", [helper.make_tensor_value_info(c, T.DOUBLE, [None, 1]) for c in names],
                              [helper.make_tensor_value_info("features_float32", T.FLOAT, [None, width])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", TARGET_OPSET[""])])


def _network_graph(estimator: Any, width: int) -> Any:
    """The fitted network on a float32 ``features`` input, with the estimator's own last steps appended."""
    import torch

    onnx = onnx_module("onnx")
    helper, T = onnx.helper, onnx.TensorProto
    module = estimator.module_
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module.eval(), (torch.zeros(1, width, dtype=torch.float32),), buffer,  # type: ignore[arg-type]
                          dynamo=False,
                          input_names=["features"], output_names=["outputs"], opset_version=TARGET_OPSET[""],
                          dynamic_axes={"features": {0: "N"}, "outputs": {0: "N"}})
    proto = onnx.load_from_string(buffer.getvalue())
    graph = proto.graph
    del graph.output[:]
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        labels = np.asarray(classes)
        if labels.dtype.kind in "iub":
            table = helper.make_tensor("classes", T.INT64, [len(labels)], labels.astype(np.int64).tolist())
            label_type = T.INT64
        elif labels.dtype.kind == "f":
            table = helper.make_tensor("classes", T.DOUBLE, [len(labels)], labels.astype(np.float64).tolist())
            label_type = T.DOUBLE
        else:
            table = helper.make_tensor("classes", T.STRING, [len(labels)], [str(v).encode() for v in labels])
            label_type = T.STRING
        graph.initializer.append(table)
        graph.node.extend([
            helper.make_node("Softmax", ["outputs"], ["probabilities"], axis=1, name="softmax"),
            helper.make_node("ArgMax", ["outputs"], ["code"], axis=1, keepdims=0, name="argmax"),
            helper.make_node("Gather", ["classes", "code"], ["label"], axis=0, name="label_of_code"),
        ])
        graph.output.extend([helper.make_tensor_value_info("label", label_type, [None]),
                             helper.make_tensor_value_info("probabilities", T.FLOAT, [None, len(labels)])])
    else:
        outputs = int(np.asarray(estimator.y_mean_).size)
        graph.initializer.extend([
            helper.make_tensor("y_scale", T.DOUBLE, [outputs], np.asarray(estimator.y_scale_, np.float64).ravel()),
            helper.make_tensor("y_mean", T.DOUBLE, [outputs], np.asarray(estimator.y_mean_, np.float64).ravel())])
        graph.node.extend([
            helper.make_node("Cast", ["outputs"], ["outputs64"], to=T.DOUBLE, name="to_float64"),
            helper.make_node("Mul", ["outputs64", "y_scale"], ["scaled"], name="times_scale"),
            helper.make_node("Add", ["scaled", "y_mean"], ["variable"], name="plus_mean"),
        ])
        graph.output.append(helper.make_tensor_value_info("variable", T.DOUBLE, [None, outputs]))
    onnx.checker.check_model(proto)
    return proto


register_converter("torch", convert_torch)

__all__ = ["convert_torch"]
