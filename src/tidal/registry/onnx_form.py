"""The ONNX form of a registered version: converted from its stored model, checked on its stored holdout.

Made on demand, by ``tidal export --format onnx`` and by the server when ``deploy.runtime: onnx`` (each time
it loads a version): the version's artifact is loaded as the native server loads it, converted
(:mod:`tidal.train.onnx`), and run with onnxruntime on the version's holdout rows (the snapshot its lineage
names), against the model's own answers. Converted at load rather than stored at registration so that
switching a project to ``deploy.runtime: onnx`` serves its current champion without a retrain, and so that
the form served is always the one just checked.
"""

from __future__ import annotations

from typing import Any

from tidal.core.entities import ModelVersion
from tidal.core.errors import ArtifactNotFound, TidalError
from tidal.data.prepare import as_model_input
from tidal.data.snapshot import read_snapshot_bytes
from tidal.train.onnx import DEFAULT_TOLERANCE, Parity, onnx_form

#: ``deploy.runtime`` values: the version's own library, or its ONNX form through onnxruntime.
RUNTIMES = ("native", "onnx")


def holdout_input(registry: Any, mv: ModelVersion) -> Any:
    """The version's holdout rows as its model takes them (``as_model_input``), read from the artifact store."""
    label = f"{mv.name}:{mv.version}"
    if not mv.lineage.holdout:
        raise TidalError(f"{label} records no holdout snapshot, so its ONNX form cannot be checked",
                         hint="export a version trained by tidal run")
    try:
        frame = read_snapshot_bytes(registry.artifacts.get(mv.lineage.holdout))
    except ArtifactNotFound:
        raise TidalError(f"the holdout snapshot of {label} is not in this workspace's artifact store, so its ONNX "
                         "form cannot be checked", hint="export from the workspace that trained it") from None
    kinds = dict(mv.signature.columns)
    return as_model_input(frame, mv.signature.names, kinds)


def make_onnx(registry: Any, mv: ModelVersion, *, tolerance: float = DEFAULT_TOLERANCE) -> tuple[bytes, Parity]:
    """The ONNX form of ``mv`` and its parity figures on the holdout (refused above ``tolerance``)."""
    model = registry.load(mv)
    return onnx_form(model, mv.signature, flavor=str(mv.info.get("flavor", "sklearn")), task=mv.task,
                     holdout=holdout_input(registry, mv), tolerance=tolerance, label=f"{mv.name}:{mv.version}")


def load_runtime(registry: Any, mv: ModelVersion, runtime: str, *, tolerance: float = DEFAULT_TOLERANCE) -> Any:
    """The model that serves ``mv`` under ``runtime``: the stored model (``native``, or a version that is an
    ONNX graph already, as a bundle's is), or its ONNX form checked now (``onnx``)."""
    if runtime == "native" or mv.info.get("flavor") == "onnx":
        return registry.load(mv)
    from tidal.train.onnx import load_onnx

    data, _ = make_onnx(registry, mv, tolerance=tolerance)
    return load_onnx(data)





def onnx_bundle(registry: Any, mv: ModelVersion, model: dict[str, Any],
                tolerance: float | None) -> tuple[dict[str, Any], bytes, tuple[str, ...]]:
    """A bundle's model.json, artifact and serving modules for the ONNX form of ``mv`` (``tidal export --format
    onnx``): the artifact is ``model.onnx``, the flavor ``onnx``, and model.json keeps the parity figures and
    the artifact it was converted from."""
    from tidal.core.hashing import sha256_bytes
    from tidal.registry.bundle import artifact_file

    data, parity = make_onnx(registry, mv, tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance)
    serve = {**model["serve"], "deploy": {**model["serve"]["deploy"], "runtime": "onnx"}}
    converted = {"flavor": model["flavor"], "format": model["format"], "sha256": mv.artifact_digest}
    out = {**model, "flavor": "onnx", "format": "onnx", "serve": serve,
           "artifact": {"file": artifact_file("onnx"), "sha256": sha256_bytes(data)},
           "onnx": {**parity.to_dict(), "converted_from": converted}}
    return out, data, ("onnxruntime",)
__all__ = ["RUNTIMES", "holdout_input", "load_runtime", "make_onnx", "onnx_bundle"]
