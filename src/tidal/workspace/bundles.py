"""``tidal serve --bundle``: the private workspace that serves an exported bundle (:func:`open_bundle`)."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path

import yaml

from tidal.core.entities import ModelState, ModelVersion
from tidal.core.errors import TidalError
from tidal.core.signature import Lineage, Signature
from tidal.registry import CHAMPION
from tidal.registry.bundle import read_bundle


def open_bundle(bundle: str | Path, *, log_dir: str | Path | None = None, log_url: str | None = None) -> Path:
    """Make the private workspace that serves ``bundle`` (``tidal serve --bundle``) and return its root.

    Every file of the bundle is checked against its MANIFEST first (IntegrityError naming the file,
    nothing made). The workspace lives in ``log_dir`` (default: ``.tidal-bundle`` inside the bundle
    when it is writable, else a folder in the system's temporary folder): a tidal.yaml naming the
    model, a SQLite metadata store and an artifact folder holding the one version as ``champion`` (under
    its own number: lower numbers are placeholders, rejected, that never serve), and the prediction log
    (SQLite there, or ``log_url``). Opening the same bundle again reuses them, so its log continues."""
    from tidal.workspace import SPEC_FILE, Workspace  # the package imports this module lazily: no cycle

    found = read_bundle(Path(bundle))
    meta = found.model
    if log_dir is None:
        inside = Path(bundle) / ".tidal-bundle"
        writable = os.access(Path(bundle), os.W_OK) or os.access(inside, os.W_OK)
        elsewhere = Path(tempfile.gettempdir()) / f"tidal-bundle-{meta['artifact']['sha256'][:12]}"
        root = inside if writable else elsewhere
    else:
        root = Path(log_dir)
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    spec = {"version": 1, "name": found.name,
            "data": {"source": "bundle-has-no-data.csv", "target": meta["serve"]["target"]},
            "model": {"estimator": meta["serve"]["estimator"]}, "deploy": meta["serve"]["deploy"],
            "storage": {"store": f"sqlite:///{root / 'tidal.db'}", "artifacts": str(root / "artifacts"),
                        "predictions": log_url or f"sqlite:///{root / 'predictions.db'}"}}
    (root / SPEC_FILE).write_text(yaml.safe_dump(spec, sort_keys=False))
    with Workspace.open(root) as ws:
        known = ws.registry.list(found.name)
        champion = ws.registry.champion(found.name)
        if champion is not None and champion.version == found.version \
                and champion.artifact_digest == meta["artifact"]["sha256"]:
            return root
        if known:
            raise TidalError(f"{root} serves another model than the bundle {bundle}",
                             hint="give this bundle its own --log-dir")
        digest = ws.artifacts.put(found.artifact)
        now = ws.clock.now()
        for n in range(1, found.version):
            ws.registry.register(ModelVersion(
                name=found.name, version=n, state=ModelState.REJECTED, created_at=now, run_id="",
                artifact_digest=digest, format=meta["format"], task=meta["task"],
                reasons=[f"not in this bundle (it holds version {found.version})"]),
                reason="placeholder: the bundle holds a later version")
        mv = ws.registry.register(ModelVersion(
            name=found.name, version=found.version, state=ModelState.VALIDATED,
            created_at=datetime.fromisoformat(meta["created_at"]), run_id=meta["run_id"],
            artifact_digest=digest, format=meta["format"], task=meta["task"],
            signature=Signature.from_dict(meta["signature"], task=meta["task"]),
            metrics=dict(meta["metrics"]), profile=dict(meta["profile"]),
            lineage=Lineage.from_dict(meta["lineage"]),
            info={**meta["info"], "flavor": meta["flavor"], "bundle_state": meta["state"]}),
            reason=f"served from the bundle {Path(bundle).resolve()}")
        ws.registry.set_alias(found.name, CHAMPION, mv.version, reason="served from a bundle", trigger="bundle")
    return root


__all__ = ["open_bundle"]
