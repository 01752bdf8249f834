"""The ONNX flavor: a model already converted to ONNX (``tidal export --format onnx``), run with onnxruntime.

A bundle written with ``--format onnx`` holds ``model.onnx`` and names this flavor, so ``tidal serve
--bundle`` serves the graph itself. Loading parses the ONNX protobuf and builds an onnxruntime session:
nothing in the file is executed as Python. Nothing trains as this flavor (it accepts no estimator).
"""

from __future__ import annotations

from typing import Any

from tidal.train.flavors.base import Flavor


class OnnxFlavor(Flavor):
    """ONNX graphs written by :func:`tidal.train.onnx.convert`, served by :class:`tidal.train.onnx.OnnxModel`."""

    name = "onnx"
    format = "onnx"
    extra = "onnx"
    modules = ("onnxruntime",)

    def handles(self, model: Any) -> bool:
        from tidal.train.onnx.runtime import OnnxModel

        return isinstance(model, OnnxModel)

    def save(self, model: Any) -> bytes:
        data: bytes = model.data
        return data

    def load(self, data: bytes) -> Any:
        from tidal.train.onnx.runtime import load_onnx

        return load_onnx(data)


__all__ = ["OnnxFlavor"]
