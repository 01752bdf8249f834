"""A model bundle: one registered version as a self-contained folder that serves without its workspace.

``tidal export NAME[:VERSION|@ALIAS] DIR`` writes (:func:`write_bundle`)::

    DIR/
      model.<format>     the artifact's bytes, exactly as the registry stores them (skops, booster archive)
      model.json         name, version, state, flavor, format, task, artifact digest, signature, metrics,
                         reference profile, lineage, and what the bundle server needs (target, deploy)
      requirements.txt   what serving needs, pinned to the versions installed when it was exported
      Dockerfile         installs requirements.txt and runs `tidal serve --bundle /bundle --host 0.0.0.0`
      MANIFEST           `sha256  path` for every file above (the format `sha256sum -c MANIFEST` reads)

``tidal serve --bundle DIR`` reads it back with :func:`read_bundle`, which checks every digest in MANIFEST
(and the artifact's against model.json) before anything is loaded.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from tidal.core.entities import ModelVersion
from tidal.core.errors import IntegrityError, TidalError
from tidal.core.hashing import sha256_bytes

MANIFEST = "MANIFEST"
MODEL_JSON = "model.json"
REQUIREMENTS = "requirements.txt"
DOCKERFILE = "Dockerfile"
#: The bundle format this tidal writes; a bundle of another format is refused, not guessed at.
BUNDLE_FORMAT = 1
#: The distributions every served model needs besides its flavor's library: tidal itself, and those that
#: load the prepare pipeline (scikit-learn, stored with skops) and compute on its arrays.
BASE_REQUIREMENTS = ("tidal", "numpy", "pandas", "scikit-learn", "skops")


@dataclass(frozen=True)
class Bundle:
    """A bundle read back and verified: its model.json and the artifact's bytes."""

    root: Path
    model: dict[str, Any]
    artifact: bytes

    @property
    def name(self) -> str:
        return str(self.model["name"])

    @property
    def version(self) -> int:
        return int(self.model["version"])


def artifact_file(fmt: str) -> str:
    """The artifact's file name in a bundle, from its format (``model.skops``)."""
    return "model." + (re.sub(r"[^A-Za-z0-9_.-]+", "-", fmt).strip("-.") or "bin")


def requirements(modules: tuple[str, ...]) -> list[str]:
    """``dist==version`` for tidal's serving needs and the distributions that provide ``modules`` (a
    flavor's library), as installed now; sorted, each once."""
    found = metadata.packages_distributions()
    names = list(BASE_REQUIREMENTS)
    for module in modules:
        names.extend(found.get(module, [module]))
    pinned: dict[str, str] = {}
    for name in names:
        try:
            # without a local label (torch's "2.13.0+cpu"): no index but the one that built it has such a
            # version, and the public release of the same number holds the same code
            pinned[name.lower()] = f"{name}=={metadata.version(name).split('+', 1)[0]}"
        except metadata.PackageNotFoundError:
            raise TidalError(f"cannot pin {name}: it is not installed in this environment",
                             hint=f"install it (pip install {name}) and export again") from None
    return [pinned[k] for k in sorted(pinned)]


def dockerfile() -> str:
    """A Dockerfile that installs the bundle's requirements and serves it (same Python minor as now)."""
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return (f"# Serves this tidal model bundle: docker build -t my-model . && docker run -p 8000:8000 my-model\n"
            f"FROM python:{py}-slim\n"
            "WORKDIR /bundle\n"
            "COPY requirements.txt /bundle/requirements.txt\n"
            "RUN pip install --no-cache-dir -r /bundle/requirements.txt\n"
            "COPY . /bundle\n"
            "EXPOSE 8000\n"
            'CMD ["tidal", "serve", "--bundle", "/bundle", "--host", "0.0.0.0", "--port", "8000"]\n')


def describe(mv: ModelVersion, *, flavor: str, serve: dict[str, Any]) -> dict[str, Any]:
    """model.json of ``mv``: what it is, where it comes from, and what the bundle server needs (``serve``)."""
    return {"bundle_format": BUNDLE_FORMAT, "name": mv.name, "version": mv.version, "state": mv.state.value,
            "flavor": flavor, "format": mv.format, "task": mv.task,
            "artifact": {"file": artifact_file(mv.format), "sha256": mv.artifact_digest},
            "created_at": mv.created_at.isoformat(), "run_id": mv.run_id,
            "signature": mv.signature.to_dict(), "metrics": dict(mv.metrics), "profile": mv.profile,
            "lineage": mv.lineage.to_dict(), "info": mv.info, "serve": serve}


def write_bundle(dest: Path, model: dict[str, Any], artifact: bytes, modules: tuple[str, ...]) -> list[str]:
    """Write a bundle of ``model`` (model.json, :func:`describe`) and its ``artifact`` into ``dest``, which
    must not exist or be empty (checked by the caller, before anything is computed); returns the files."""
    files: dict[str, bytes] = {
        model["artifact"]["file"]: artifact,
        MODEL_JSON: (json.dumps(model, indent=2, sort_keys=True, default=str) + "\n").encode(),
        REQUIREMENTS: ("\n".join(requirements(modules)) + "\n").encode(),
        DOCKERFILE: dockerfile().encode(),
    }
    manifest = "".join(f"{sha256_bytes(data)}  {name}\n" for name, data in sorted(files.items()))
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (dest / name).write_bytes(data)
    (dest / MANIFEST).write_text(manifest)
    return [*sorted(files), MANIFEST]


def refuse_target(dest: Path) -> None:
    """A TidalError when ``dest`` exists and is not an empty folder (nothing is ever overwritten)."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise TidalError(f"{dest} exists and is not an empty folder",
                         hint="export into a new folder (or an empty one)")


def read_bundle(root: Path) -> Bundle:
    """The bundle at ``root``, every file checked against MANIFEST first: a missing, changed or unlisted
    model file raises :class:`~tidal.core.errors.IntegrityError` naming it, and nothing is loaded."""
    root = Path(root)
    hint = "export the model again (tidal export), or restore the bundle from its source"
    if not (root / MANIFEST).is_file():
        raise IntegrityError(f"{root} is not a tidal bundle: it has no {MANIFEST}",
                             hint="give the folder `tidal export` wrote")
    listed: dict[str, str] = {}
    for n, line in enumerate((root / MANIFEST).read_text().splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", digest) or "/" in name or name in ("", ".", ".."):
            raise IntegrityError(f"bundle {root}: line {n} of {MANIFEST} is not `sha256  file`", hint=hint)
        listed[name] = digest
    for name, digest in listed.items():
        path = root / name
        if not path.is_file():
            raise IntegrityError(f"bundle {root}: {name} is missing", hint=hint)
        if sha256_bytes(path.read_bytes()) != digest:
            raise IntegrityError(f"bundle {root}: {name} was modified (its sha256 differs from {MANIFEST})",
                                 hint=hint)
    if MODEL_JSON not in listed:
        raise IntegrityError(f"bundle {root}: {MANIFEST} does not list {MODEL_JSON}", hint=hint)
    model = json.loads((root / MODEL_JSON).read_text())
    if model.get("bundle_format") != BUNDLE_FORMAT:
        raise TidalError(f"bundle {root} has format {model.get('bundle_format')!r}; this tidal reads "
                         f"format {BUNDLE_FORMAT}", hint="export it again with this version of tidal")
    art = model["artifact"]
    if art["file"] not in listed:
        raise IntegrityError(f"bundle {root}: {MANIFEST} does not list the artifact {art['file']}", hint=hint)
    data = (root / art["file"]).read_bytes()
    if sha256_bytes(data) != art["sha256"]:
        raise IntegrityError(f"bundle {root}: the artifact {art['file']} does not match its digest in "
                             f"{MODEL_JSON}", hint=hint)
    return Bundle(root=root, model=model, artifact=data)


__all__ = ["BUNDLE_FORMAT", "Bundle", "artifact_file", "describe", "dockerfile", "read_bundle", "refuse_target",
           "requirements", "write_bundle"]
