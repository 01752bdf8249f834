"""One graph from two: the ``prepare`` step in float64, then the estimator in float32, as the libraries run.

scikit-learn computes ``prepare`` (imputers, scalers, encoders) in float64, and XGBoost and LightGBM then
round its output to float32 before they compare it with their float32 split thresholds. skl2onnx, given
float32 inputs, computes ``prepare`` in float32: a scaled value can then differ from scikit-learn's in its
last bit, which is enough to send it the other way at a threshold that is itself a training value (as
XGBoost's are: an integer column scaled lands exactly on them). So tidal converts ``prepare`` with float64
inputs, casts its output to float32 and hands that to the estimator's graph, converted on its own, and
merges the two (:func:`two_stage`): the same arithmetic, in the same precisions, as the model in memory.

onnxruntime has no float64 ``Imputer`` (ai.onnx.ml), and the operator keeps its fill values in float32; an
imputer of float64 values becomes the standard operators ``IsNaN`` and ``Where`` with the fitted imputer's
own float64 fill values (:func:`_plain_imputers`): a float32 mean, scaled, is another value than the mean,
and the rows it imputes in training all sit at a split threshold of XGBoost.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tidal.train.onnx.converters import TARGET_OPSET, onnx_module

#: Prefixes the merge gives the two graphs' names; taken off the graph's inputs and outputs again.
PREPARE, MODEL = "prepare__", "model__"


def prepare_graph(prepare: Any, types: list[tuple[str, Any]], width: int | None) -> Any:
    """The graph of ``prepare`` (converted with ``types``: float64 for numbers), its ``width`` columns cast
    to float32 as ``features_float32``."""
    skl2onnx = onnx_module("skl2onnx")
    onnx = onnx_module("onnx")
    head = skl2onnx.convert_sklearn(prepare, initial_types=types, target_opset=TARGET_OPSET)
    _plain_imputers(head, _fills(prepare))
    (out,) = head.graph.output
    head.graph.node.append(onnx.helper.make_node("Cast", [out.name], ["features_float32"],
                                                 to=onnx.TensorProto.FLOAT, name="to_float32"))
    del head.graph.output[:]
    head.graph.output.append(onnx.helper.make_tensor_value_info("features_float32", onnx.TensorProto.FLOAT,
                                                                [None, width]))
    return head


def estimator_graph(estimator: Any, width: int | None, options: Any) -> Any:
    """The graph of ``estimator`` on a float32 ``features`` matrix of ``width`` columns."""
    skl2onnx = onnx_module("skl2onnx")
    types = onnx_module("skl2onnx.common.data_types")
    return skl2onnx.convert_sklearn(estimator, initial_types=[("features", types.FloatTensorType([None, width]))],
                                    options=options, target_opset=TARGET_OPSET)


def two_stage(head: Any, tail: Any) -> Any:
    """:func:`prepare_graph` then :func:`estimator_graph` as one graph; its inputs and outputs keep the names
    a one-piece conversion gives them (the signature's columns; ``label``, ``probabilities``, ``variable``)."""
    onnx = onnx_module("onnx")
    for graph in (head, tail):  # one opset per domain in the merged model: the highest either uses
        graph.ir_version = max(head.ir_version, tail.ir_version)
    versions: dict[str, int] = {}
    for op in [*head.opset_import, *tail.opset_import]:
        versions[op.domain] = max(versions.get(op.domain, 0), op.version)
    for graph in (head, tail):
        del graph.opset_import[:]
        graph.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in sorted(versions.items()))
    merged = onnx.compose.merge_models(head, tail, io_map=[("features_float32", "features")],
                                       prefix1=PREPARE, prefix2=MODEL)
    names = {v.name: v.name.removeprefix(PREPARE) for v in merged.graph.input}
    names.update({v.name: v.name.removeprefix(MODEL) for v in merged.graph.output})
    for node in merged.graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
    for value in [*merged.graph.input, *merged.graph.output]:
        value.name = names.get(value.name, value.name)
    return merged


def _fills(prepare: Any) -> list[np.ndarray]:
    """The float64 fill values of every fitted numeric SimpleImputer in ``prepare``."""
    found = []
    for _, est, _ in getattr(prepare, "transformers_", []):
        for step in (est.steps if hasattr(est, "steps") else [(None, est)]):
            stats = getattr(step[1], "statistics_", None)
            if type(step[1]).__name__ == "SimpleImputer" and stats is not None and stats.dtype.kind == "f":
                found.append(np.asarray(stats, dtype=np.float64))
    return found


def _plain_imputers(model: Any, exact: list[np.ndarray]) -> None:
    """Replace each ai.onnx.ml ``Imputer`` whose input is float64 with ``Where(IsNaN(x), fill, x)``, its fill
    the float64 values among ``exact`` that round to the operator's float32 ones."""
    onnx = onnx_module("onnx")
    inferred = onnx.shape_inference.infer_shapes(model)
    double = {v.name for v in [*inferred.graph.value_info, *inferred.graph.input]
              if v.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE}
    nodes = []
    for node in model.graph.node:
        if node.op_type != "Imputer" or node.input[0] not in double:
            nodes.append(node)
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        fill = list(attrs.get("imputed_value_floats") or [])
        rounded = np.asarray(fill, dtype=np.float32)
        fill = next((e.tolist() for e in exact if e.shape == rounded.shape and np.array_equal(
            e.astype(np.float32), rounded, equal_nan=True)), fill)
        replaced = attrs.get("replaced_value_float", float("nan"))
        if replaced == replaced:  # not NaN: a fill for another value than missing; leave it to fail loudly
            nodes.append(node)
            continue
        x, (y,) = node.input[0], node.output
        fill_name, nan_name = f"{y}__fill", f"{y}__isnan"
        nodes.append(onnx.helper.make_node(
            "Constant", [], [fill_name], name=f"{node.name}__fill",
            value=onnx.helper.make_tensor(fill_name, onnx.TensorProto.DOUBLE, [len(fill)], fill)))
        nodes.append(onnx.helper.make_node("IsNaN", [x], [nan_name], name=f"{node.name}__isnan"))
        nodes.append(onnx.helper.make_node("Where", [nan_name, fill_name, x], [y], name=f"{node.name}__where"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)


__all__ = ["estimator_graph", "prepare_graph", "two_stage"]
