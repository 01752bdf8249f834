"""The archive the booster flavors (XGBoost, LightGBM) store a model in: a zip of a manifest, the booster in
the library's own format and, for a pipeline, its ``prepare`` steps as a skops file.

Nothing in it is code. The manifest is JSON and names the estimator class from a fixed list per flavor;
the booster is read by the library's own parser (XGBoost's UBJSON, LightGBM's model text); the ``prepare``
steps are a skops archive checked name by name like any scikit-learn model
(:func:`tidal.train.flavors.sklearn.check_trusted`). Members are written in name order with a fixed
timestamp, and the manifest with sorted keys, so the same fitted model always gives the same bytes.
"""

from __future__ import annotations

import copy
import io
import json
import math
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from tidal.core.errors import IntegrityError, TrainingError
from tidal.train.flavors.base import Flavor

MANIFEST = "manifest.json"
PREPARE = "prepare.skops"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
#: The dtypes a stored class array may be rebuilt with (numbers, booleans, text; never anything else).
_CLASS_KINDS = frozenset("biufU")


def write_archive(members: Mapping[str, bytes]) -> bytes:
    """A zip of ``members`` in name order, each with a fixed timestamp: the same members, the same bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, members[name])
    return out.getvalue()


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def read_archive(data: bytes, *, fmt: str, estimators: frozenset[str],
                 member: str = "booster") -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and members of an archive of format ``fmt``; :class:`IntegrityError` when it is not one,
    when its manifest names an estimator class outside ``estimators``, or when it lacks the member its
    manifest key ``member`` names (the booster; the torch flavor's weights). Reads bytes and JSON only."""
    hint = "the file may be truncated, corrupted or not made by tidal; re-run `tidal run` to train it again"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        manifest = json.loads(members[MANIFEST])
    except (zipfile.BadZipFile, KeyError, ValueError, UnicodeDecodeError, OSError) as exc:
        raise IntegrityError(f"the model file is not a valid {fmt} archive ({type(exc).__name__}: {exc})",
                             hint=hint) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise IntegrityError(f"the model file is not a {fmt} archive (its manifest says {found!r})", hint=hint)
    estimator = manifest.get("estimator")
    if estimator not in estimators:
        raise IntegrityError(f"the model file names estimator {estimator!r}, which tidal never builds from a {fmt} "
                             f"archive (known: {', '.join(sorted(estimators))})", hint=hint)
    missing = [m for m in (manifest.get(member), manifest.get("prepare")) if m and m not in members]
    if missing or not manifest.get(member):
        raise IntegrityError(f"the model file lacks {', '.join(map(str, missing)) or 'its ' + member}", hint=hint)
    return manifest, members


def json_params(estimator: Any) -> dict[str, Any]:
    """``estimator.get_params(deep=False)`` as JSON values; :class:`TrainingError` for one that is not (a
    callable objective, say: it could only be stored as code)."""
    params = estimator.get_params(deep=False)
    out: dict[str, Any] = {}
    for key, value in sorted(params.items()):
        if not _is_json(value):
            raise TrainingError(f"model.params.{key}: {type(value).__name__} values cannot be stored without pickle",
                                hint=f"give {key} as a number, a string, a list or a mapping")
        out[key] = value
    return out


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return True  # NaN (XGBoost's `missing`) is written as NaN, read back by json as float("nan")
    if isinstance(value, list | tuple):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def classes_json(classes: Any) -> dict[str, Any] | None:
    """A class array as ``{"dtype", "values"}`` JSON, or None when there is none."""
    if classes is None:
        return None
    arr = np.asarray(classes)
    dtype = "object" if arr.dtype.kind == "O" else arr.dtype.str
    values = [v.item() if hasattr(v, "item") else v for v in arr.tolist()]
    for v in values:
        if not (isinstance(v, bool | int | str) or (isinstance(v, float) and math.isfinite(v))):
            raise TrainingError(f"a class label of type {type(v).__name__} cannot be stored",
                                hint="use numbers, booleans or strings as the target's values")
    return {"dtype": dtype, "values": values}


def classes_array(stored: Any) -> np.ndarray | None:
    """The class array :func:`classes_json` wrote; :class:`IntegrityError` for any other dtype or value."""
    if stored is None:
        return None
    try:
        dtype = np.dtype(stored["dtype"]) if stored["dtype"] != "object" else np.dtype(object)
        values = stored["values"]
        if (dtype.kind not in _CLASS_KINDS and dtype != np.dtype(object)) or not isinstance(values, list) or \
                not all(isinstance(v, bool | int | float | str) for v in values):
            raise ValueError(f"dtype {stored['dtype']!r} or its values")
        return np.asarray(values, dtype=dtype)
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"the model file's classes are not valid: {exc}",
                             hint="re-run `tidal run` to train it again") from exc


def split_pipeline(model: Any) -> tuple[Any, str | None, Any]:
    """``(estimator, step name, head)``: a pipeline's last step, its name, and a copy of the pipeline with
    that step replaced by ``"passthrough"`` (the fitted ``prepare`` steps, shared, not copied); a bare
    estimator gives ``(model, None, None)``."""
    steps = getattr(model, "steps", None)
    if not isinstance(steps, list) or not steps:
        return model, None, None
    name, estimator = steps[-1]
    head = copy.copy(model)
    head.steps = [*steps[:-1], (name, "passthrough")]
    return estimator, name, head


def save_prepare(head: Any) -> bytes:
    from tidal.train.flavors.sklearn import SklearnFlavor

    return SklearnFlavor().save(head)


def join_pipeline(prepare: bytes | None, step: str | None, estimator: Any) -> Any:
    """The estimator back in its pipeline (loaded from the checked skops file ``prepare``), or alone."""
    if prepare is None or step is None:
        return estimator
    from tidal.train.flavors.sklearn import SklearnFlavor

    head = SklearnFlavor().load(prepare)
    steps = getattr(head, "steps", None)
    if not isinstance(steps, list) or not steps or steps[-1] != (step, "passthrough"):
        raise IntegrityError("the model file's prepare steps do not end where its booster goes",
                             hint="re-run `tidal run` to train it again")
    steps[-1] = (step, estimator)
    return head


def model_members(manifest: dict[str, Any], members: Mapping[str, bytes],
                  member: str = "booster") -> tuple[bytes, bytes | None]:
    """The bytes of the member the manifest key ``member`` names (the booster) and the prepare step's bytes
    (None for a bare estimator)."""
    prepare = manifest.get("prepare")
    return members[manifest[member]], (members[prepare] if prepare else None)


def library_class(cls: type, library: str, names: frozenset[str]) -> str | None:
    """The class among ``names``, defined in ``library``, that ``cls`` is or derives from (None if none):
    what a booster flavor stores and what ``model.estimator`` may name."""
    for base in cls.__mro__ if isinstance(cls, type) else ():
        if base.__module__.split(".")[0] == library and base.__name__ in names:
            return base.__name__
    return None


def stored_class(estimator: Any, library: str, names: frozenset[str]) -> str:
    """:func:`library_class` of ``estimator``'s class; IntegrityError when it is not one a flavor stores."""
    found = library_class(type(estimator), library, names)
    if found is None:
        raise IntegrityError(f"{type(estimator).__name__} is not a {library} estimator tidal stores")
    return found


def in_pipeline(model: Any, modules: tuple[str, ...], classes: frozenset[str]) -> bool:
    """Whether ``model`` (or a pipeline's last step) is one of ``classes`` of a library in ``modules``,
    found by its class hierarchy (nothing is imported)."""
    estimator, _, _ = split_pipeline(model)
    return any(c.__module__.split(".")[0] in modules and c.__name__ in classes for c in type(estimator).__mro__)




class BoosterFlavor(Flavor):
    """A flavor for a boosting library's scikit-learn estimators (alone, or last in tidal's pipeline): it
    handles and accepts the classes of :attr:`estimators` defined in its library (``modules[0]``)."""

    #: The estimator class names the flavor stores, and that ``model.estimator`` may name from its library.
    estimators: frozenset[str] = frozenset()

    def handles(self, model: Any) -> bool:
        return in_pipeline(model, self.modules, self.estimators)

    def accepts(self, cls: type) -> bool:
        return library_class(cls, self.modules[0], self.estimators) is not None


__all__ = ["MANIFEST", "PREPARE", "BoosterFlavor", "classes_array", "classes_json", "in_pipeline", "join_pipeline",
           "json_params", "library_class", "manifest_bytes", "model_members", "read_archive", "save_prepare",
           "split_pipeline", "stored_class", "write_archive"]
