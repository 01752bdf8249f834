"""The scikit-learn flavor: skops files that may name only trusted classes, made byte-reproducible.

Loading checks every node of the file against :mod:`tidal.train.flavors.skops_trust` (an explicit list of
classes; functions, methods and gadgets never) before skops builds anything: a refused file raises
:class:`~tidal.core.errors.UntrustedModel` naming each refused name and why, and nothing from it has run.

skops names the arrays inside its zip after ``id()`` of the objects and stamps each entry with the current
time, so two saves of the same model differ. :func:`canonical_skops` rewrites the archive with ids
renumbered in document order and a fixed timestamp: the same fitted model then always has the same
digest, in any process, which is what makes a run reproducible and the step cache exact.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from tidal.core.errors import IntegrityError, UntrustedModel
from tidal.train.flavors.base import Flavor
from tidal.train.flavors.skops_trust import audit_schema

_INVALID = "the model file is not a valid skops archive"
_INVALID_HINT = "it may be truncated or corrupted; re-run `tidal run`"

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _renumber(node: Any, ids: dict[int, int], files: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int):
                out[key] = ids.setdefault(value, len(ids) + 1)
            elif key == "file" and isinstance(value, str) and value.endswith(".npy"):
                out[key] = files.setdefault(value, f"{len(files):06d}.npy")
            else:
                out[key] = _renumber(value, ids, files)
        return out
    if isinstance(node, list):
        return [_renumber(v, ids, files) for v in node]
    return node


def canonical_skops(data: bytes) -> bytes:
    """The same skops archive with deterministic member names, ids and timestamps."""
    src = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(src.read("schema.json"))
    files: dict[str, str] = {}
    schema = _renumber(schema, {}, files)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        def write(name: str, payload: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, payload)

        write("schema.json", json.dumps(schema, sort_keys=True, separators=(",", ":")).encode())
        for old, new in sorted(files.items(), key=lambda kv: kv[1]):
            write(new, src.read(old))
        known = set(files) | {"schema.json"}
        for name in sorted(set(src.namelist()) - known):
            write(name, src.read(name))
    return out.getvalue()


def read_schema(data: bytes) -> Any:
    """The parsed ``schema.json`` of a skops archive, or :class:`IntegrityError` when it is not one."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(_INVALID, hint=_INVALID_HINT) from exc


def check_trusted(data: bytes) -> list[str]:
    """The names the skops archive ``data`` uses, all trusted; :class:`UntrustedModel` when any is not.

    Reads only the archive's JSON: nothing in the file is imported, called or built.
    """
    trusted, refused = audit_schema(read_schema(data))
    if refused:
        shown = "; ".join(str(r) for r in refused)
        raise UntrustedModel(
            f"the model file names {len(refused)} thing{'s' if len(refused) > 1 else ''} tidal never loads, "
            f"refused before anything in it was built: {shown}",
            refused=[r.name for r in refused],
            hint="a tidal model holds only scikit-learn estimators, their fitted parts and NumPy/SciPy data, "
                 "never code to call; retrain it with `tidal run` (a file you did not make may be hostile)",
        )
    return trusted


class SklearnFlavor(Flavor):
    """Any scikit-learn estimator or pipeline, saved with skops."""

    name = "sklearn"
    format = "skops"

    def handles(self, model: Any) -> bool:
        return hasattr(model, "fit") and hasattr(model, "get_params")

    def accepts(self, cls: type) -> bool:
        """scikit-learn estimator classes (``BaseEstimator`` subclasses, wherever they are defined)."""
        from sklearn.base import BaseEstimator

        return isinstance(cls, type) and issubclass(cls, BaseEstimator)

    def save(self, model: Any) -> bytes:
        import skops.io as sio

        return canonical_skops(sio.dumps(model))

    def load(self, data: bytes) -> Any:
        """The model in ``data``; every name in the file is checked first (:func:`check_trusted`), and skops
        is told to trust exactly those names, so its own audit refuses anything tidal did not see."""
        import skops.io as sio
        from skops.io.exceptions import UntrustedTypesFoundException

        trusted = check_trusted(data)
        try:
            return sio.loads(data, trusted=trusted)
        except UntrustedTypesFoundException as exc:  # a name skops sees that tidal's check did not
            raise UntrustedModel(f"the model file names types tidal never loads: {exc}",
                                 hint="retrain it with `tidal run`") from exc
        except (zipfile.BadZipFile, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"{_INVALID}: {type(exc).__name__}: {exc}", hint=_INVALID_HINT) from exc
