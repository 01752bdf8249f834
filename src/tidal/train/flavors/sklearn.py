"""The scikit-learn flavor: skops files with an explicit list of trusted types, made byte-reproducible.

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

from tidal.core.errors import IntegrityError
from tidal.train.flavors.base import Flavor

# Types outside skops' default trust list that tidal loads. Everything here is a data container or a
# scikit-learn / NumPy / SciPy class whose state is restored by skops' own loaders, never by pickle.
TRUSTED_MODULE_PREFIXES: tuple[str, ...] = ("sklearn.", "numpy.", "scipy.sparse.")
TRUSTED_TYPES: frozenset[str] = frozenset({"numpy.dtype", "builtins.slice", "builtins.tuple"})

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


def untrusted(types: list[str]) -> list[str]:
    """The types in ``types`` that tidal does not trust."""
    return [t for t in types if t not in TRUSTED_TYPES and not t.startswith(TRUSTED_MODULE_PREFIXES)]


class SklearnFlavor(Flavor):
    """Any scikit-learn estimator or pipeline, saved with skops."""

    name = "sklearn"
    format = "skops"

    def handles(self, model: Any) -> bool:
        return hasattr(model, "fit") and hasattr(model, "get_params")

    def save(self, model: Any) -> bytes:
        import skops.io as sio

        return canonical_skops(sio.dumps(model))

    def load(self, data: bytes) -> Any:
        import skops.io as sio

        try:
            found = sio.get_untrusted_types(data=data)
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise IntegrityError("the model file is not a valid skops archive",
                                 hint="it may be truncated or corrupted; re-run `tidal run`") from exc
        refused = untrusted(found)
        if refused:
            raise IntegrityError(
                f"the model file asks to load types tidal does not trust: {', '.join(sorted(refused))}",
                hint="tidal loads only scikit-learn, NumPy and SciPy types; retrain the model with them",
            )
        return sio.loads(data, trusted=found)
