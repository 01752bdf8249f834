"""The ONNX form of a version: converted from its model, checked on its holdout against the model's answers.

- At registration, when ``deploy.runtime`` is ``onnx`` (:func:`registration_form`): the model that passed
  its gate is converted (:mod:`tidal.train.onnx`), run with onnxruntime on the holdout, and the form is
  stored as a second artifact of the version (``info["onnx"]``: its digest and the parity figures). A
  model that cannot be converted, or whose form differs beyond ``deploy.onnx_tolerance``, is rejected as
  served = validated rejects a stored form that differs: under this runtime the ONNX form is what serves.
- At load (:func:`load_runtime`): the server serves that stored form (its digest checked by the store).
  A version registered before the project switched to ``deploy.runtime: onnx`` has none: its ONNX form is
  made then from the stored model and checked on the stored holdout (:func:`make_onnx`), so switching
  serves the current champion without a retrain.
- ``tidal export --format onnx`` (:func:`onnx_bundle`) makes and checks the form the same way, with the
  command's ``--tolerance``.
"""

from __future__ import annotations

from typing import Any

from tidal.core.entities import ModelVersion
from tidal.core.errors import ArtifactNotFound, TidalError
from tidal.data.prepare import as_model_input
from tidal.data.snapshot import read_snapshot_bytes
from tidal.evaluate.served import SERVED
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

    stored = mv.info.get("onnx") or {}
    if stored.get("artifact"):
        if float(stored.get("max_difference", 0.0)) > tolerance:
            raise TidalError(f"the ONNX form of {mv.name}:{mv.version} differs from it by "
                             f"{stored['max_difference']:.3g} on its holdout, more than deploy.onnx_tolerance "
                             f"{tolerance:g}", hint="raise deploy.onnx_tolerance, or serve it with runtime: native")
        return load_onnx(registry.artifacts.get(stored["artifact"]))
    data, _ = make_onnx(registry, mv, tolerance=tolerance)
    return load_onnx(data)


def registration_form(artifacts: Any, model: Any, mv: ModelVersion, holdout: Any, *,
                      tolerance: float) -> tuple[dict[str, Any] | None, str | None]:
    """The ONNX form of ``model`` (the version ``mv`` is about to register) stored in ``artifacts``:
    ``(info["onnx"], None)``, or ``(None, why)`` when it cannot serve (why starts with served = validated)."""
    try:
        data, parity = onnx_form(model, mv.signature, flavor=str(mv.info.get("flavor", "sklearn")), task=mv.task,
                                 holdout=holdout, tolerance=tolerance, label="the model")
    except TidalError as exc:
        return None, f"{SERVED}: deploy.runtime is onnx, and {exc.message}"
    return {"artifact": artifacts.put(data), **parity.to_dict()}, None





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
__all__ = ["RUNTIMES", "holdout_input", "load_runtime", "make_onnx", "onnx_bundle", "registration_form"]
