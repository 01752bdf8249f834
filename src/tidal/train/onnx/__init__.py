"""ONNX: tidal's fitted ``(prepare, model)`` pipelines converted to ONNX, checked on the holdout, and run with
onnxruntime (``tidal export --format onnx``, ``deploy.runtime: onnx``; docs/deploy.md, "ONNX").

- :mod:`tidal.train.onnx.converters`: a converter per flavor (scikit-learn through skl2onnx, XGBoost and
  LightGBM through onnxmltools' converters registered into skl2onnx, torch networks through ``torch.onnx``:
  :mod:`tidal.train.onnx.torch_graph`), :func:`register_converter` for more;
- :mod:`tidal.train.onnx.runtime`: :class:`OnnxModel`, an ONNX graph behind ``predict`` / ``predict_proba``;
- :mod:`tidal.train.onnx.parity`: the holdout comparison with the model it was converted from.

The ONNX libraries (the ``onnx`` extra) are imported only when a model is converted or run.
"""

from tidal.train.onnx.converters import (
    ONNX_EXTRA,
    CannotConvert,
    convert,
    converter_for,
    register_converter,
)
from tidal.train.onnx.parity import DEFAULT_TOLERANCE, Parity, ParityError, check_parity, onnx_form
from tidal.train.onnx.runtime import OnnxClassifier, OnnxModel, load_onnx
from tidal.train.onnx.torch_graph import convert_torch  # registers the torch flavor's converter

__all__ = ["DEFAULT_TOLERANCE", "ONNX_EXTRA", "CannotConvert", "OnnxClassifier", "OnnxModel", "Parity",
           "ParityError", "check_parity", "convert", "convert_torch", "converter_for", "load_onnx", "onnx_form",
           "register_converter"]
