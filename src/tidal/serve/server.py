"""Running the server: uvicorn, one process or several.

``run_server(root)`` runs the app in this process (host, port and workers from the spec's ``deploy``
section, or as given). With ``workers > 1``
uvicorn starts that many processes that share the listening socket; each builds its own app through
:func:`worker_app` (an app factory: a live app cannot be handed to another process) from the project
root in the environment variable :data:`ROOT_ENV`. All of them append to the same prediction log, and
their metrics go to a temporary folder made for this server (prometheus_client's multiprocess mode), so
``/metrics`` from any worker shows the totals of all; the folder is removed when the server stops.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

ROOT_ENV = "TIDAL_SERVE_ROOT"
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"

logger = logging.getLogger("tidal.serve")


def worker_app() -> Any:
    """The app of one worker process (uvicorn calls this factory in each worker)."""
    from tidal.serve.app import create_app

    root = os.environ.get(ROOT_ENV)
    if not root:
        raise RuntimeError(f"{ROOT_ENV} is not set: start workers with tidal.serve.run_server")
    return create_app(Path(root), shared_log=True)


def log_config() -> dict[str, Any]:
    """uvicorn's logging setup, plus tidal's own logger (model loads, swaps, error ids), with the process id
    so that the lines of several workers can be told apart."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["tidal"] = {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"}
    config["handlers"]["tidal"] = {"class": "logging.StreamHandler", "formatter": "tidal",
                                   "stream": "ext://sys.stderr"}
    config["loggers"]["tidal"] = {"handlers": ["tidal"], "level": "INFO", "propagate": False}
    return config


def run_server(root: Path, *, host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Serve the project at ``root`` (a folder holding tidal.yaml, or the file) until interrupted (SIGINT
    or SIGTERM). ``host``, ``port`` and ``workers`` default to the spec's ``deploy`` section.

    The workspace and the prediction log are opened (and the log's database migrated) here, once, before
    listening: a missing tidal.yaml or an unreachable database raises its TidalError before anything
    starts, and several workers never race to create the same tables.
    """
    import uvicorn

    from tidal.serve.threads import cap_env
    from tidal.workspace import Workspace

    root = Path(root).resolve()
    with Workspace.open(root) as ws:
        ws.predictions  # noqa: B018  (opens it: creates or migrates its tables)
        deploy = ws.spec.deploy
    host = deploy.host if host is None else host
    port = deploy.port if port is None else port
    workers = deploy.workers if workers is None else workers
    if workers < 1:
        raise ValueError("workers must be at least 1")
    cap_env()  # processes started from here load BLAS/OpenMP with one thread
    # proxy_headers off: tidal reads neither the client's address nor the scheme, so uvicorn's middleware
    # that rewrites them from X-Forwarded-* would only cost every request a layer; server_header off: the
    # answers do not advertise the server software.
    options: dict[str, Any] = {"host": host, "port": port, "log_config": log_config(), "access_log": False,
                               "loop": "auto", "http": "auto", "lifespan": "on", "timeout_graceful_shutdown": 10,
                               "proxy_headers": False, "server_header": False}
    if workers == 1:
        import logging.config

        from tidal.serve.app import create_app

        logging.config.dictConfig(options["log_config"])  # create_app logs before uvicorn would set this up
        uvicorn.run(create_app(root), **options)
        return
    metrics_dir = tempfile.mkdtemp(prefix="tidal-metrics-")
    previous = {k: os.environ.get(k) for k in (ROOT_ENV, METRICS_ENV)}
    os.environ[ROOT_ENV] = str(root)
    os.environ[METRICS_ENV] = metrics_dir
    try:
        uvicorn.run("tidal.serve.server:worker_app", factory=True, workers=workers, **options)
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(metrics_dir, ignore_errors=True)


__all__ = ["METRICS_ENV", "ROOT_ENV", "log_config", "run_server", "worker_app"]
