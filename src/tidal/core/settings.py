"""One typed settings object, built once at the edge (CLI, server, SDK) and passed inward.

Nothing reads the environment at import time: :meth:`Settings.resolve` reads it when called.
Precedence, strongest first: explicit arguments, environment (``TIDAL_STORE_URL``,
``TIDAL_ARTIFACTS_URL``, ``TIDAL_EXECUTOR``,
``TIDAL_PREDICTIONS_URL``), the ``storage:`` section of tidal.yaml, defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

WORKSPACE_DIR = ".tidal"


@dataclass(frozen=True)
class Settings:
    """Where a workspace keeps its metadata and artifacts, and how it executes steps."""

    root: Path
    store_url: str
    artifacts_url: str
    executor: str = "local"
    predictions_url: str = ""

    @property
    def workspace_dir(self) -> Path:
        return self.root / WORKSPACE_DIR

    @classmethod
    def resolve(
        cls,
        root: Path,
        *,
        store_url: str | None = None,
        artifacts_url: str | None = None,
        executor: str | None = None,
        predictions_url: str | None = None,
        spec_storage: Mapping[str, str | None] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        env = os.environ if environ is None else environ
        from_spec = dict(spec_storage or {})
        root = root.resolve()
        ws = root / WORKSPACE_DIR

        def pick(explicit: str | None, env_key: str, spec_key: str, default: str) -> str:
            for value in (explicit, env.get(env_key), from_spec.get(spec_key)):
                if value:
                    return value
            return default

        store = pick(store_url, "TIDAL_STORE_URL", "store", f"sqlite:///{ws / 'tidal.db'}")
        artifacts = pick(artifacts_url, "TIDAL_ARTIFACTS_URL", "artifacts", str(ws / "artifacts"))
        execu = pick(executor, "TIDAL_EXECUTOR", "executor", "local")
        # The prediction log gets its own SQLite file by default: serving writes much more often than
        # anything else, and a separate file keeps those writes from queueing behind run bookkeeping.
        preds = pick(predictions_url, "TIDAL_PREDICTIONS_URL", "predictions", f"sqlite:///{ws / 'predictions.db'}")
        # A relative SQLite path or artifact folder is relative to the project, not the current folder.
        if store.startswith("sqlite:///") and not store.startswith("sqlite:////"):
            rel = store[len("sqlite:///"):]
            if rel and rel != ":memory:" and not Path(rel).is_absolute():
                store = f"sqlite:///{(root / rel).resolve()}"
        if "://" not in artifacts and not Path(artifacts).is_absolute():
            artifacts = str((root / artifacts).resolve())
        if preds.startswith("sqlite:///") and not preds.startswith("sqlite:////"):
            rel = preds[len("sqlite:///"):]
            if rel and not Path(rel).is_absolute():
                preds = f"sqlite:///{(root / rel).resolve()}"
        return cls(root=root, store_url=store, artifacts_url=artifacts, executor=execu, predictions_url=preds)
