"""Running the server: uvicorn, one process or several.

``run_server(root)`` runs the app in this process (host, port and workers from the spec's ``deploy``
section, or as given). With ``workers > 1``
uvicorn starts that many processes that share the listening socket; each builds its own app through
:func:`worker_app` (an app factory: a live app cannot be handed to another process) from the project
root in the environment variable :data:`ROOT_ENV`. All of them append to the same prediction log, and
their metrics go to a temporary folder made for this server (prometheus_client's multiprocess mode), so
``/metrics`` from any worker shows the totals of all; the folder is removed when the server stops.

Every process guards its connections (:mod:`tidal.serve.connections`): header and body timeouts and a cap
on open connections from the spec (``deploy.timeouts``, ``deploy.max_connections``), uvicorn's keep-alive
timeout from ``deploy.timeouts.keep_alive_s``. Only the routes ``deploy.auth`` lists need a token:
listening on an address other than loopback logs a warning that says so (:func:`exposure_warning`).
"""

from __future__ import annotations

import copy
import errno
import ipaddress
import logging
import os
import shutil
import socket
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


def exposure_warning(host: str) -> str | None:
    """The warning for a server listening on ``host``, or None when only this machine can reach it (a
    loopback address, or a name that resolves to loopback addresses only)."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            found = {info[4][0] for info in socket.getaddrinfo(host, None)} if host else set()
        except OSError:
            found = set()
        loopback = bool(found) and all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in found)
    if loopback:
        return None
    return (f"tidal serve listens on {host or 'every address'}, and the server has no authentication on the routes "
            "deploy.auth does not list (docs/api.md): anyone who can reach this address can read the model's details "
            "(/model, /metrics) and, unless deploy.auth lists predict and feedback, predict and label predictions. "
            "Listen on 127.0.0.1 behind an authenticating proxy (HTTPS: tokens must not cross the network in clear), "
            "or make sure only trusted clients can reach it")


def check_port(host: str, port: int) -> None:
    """Raise :class:`~tidal.core.errors.ServingError` if the server could not listen on ``host``:``port``
    (in use, not allowed, no such address). Checked before uvicorn starts: its own failure comes after
    "Application startup complete", as an ``[Errno 98]`` line among its logs. Port 0 (any free port)
    always binds."""
    from tidal.core.errors import ServingError

    if port == 0:
        return
    # as uvicorn binds: the address family from the host, SO_REUSEADDR (a port left in TIME_WAIT is free)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServingError(f"port {port} on {host} is in use",
                                   hint="choose another with --port or deploy.port") from None
            if exc.errno == errno.EACCES:
                raise ServingError(f"not allowed to listen on port {port} on {host}",
                                   hint="ports below 1024 need privileges: choose another with --port or "
                                        "deploy.port") from None
            raise ServingError(f"cannot listen on {host} port {port}: {exc.strerror or exc}",
                               hint="check --host and --port (deploy.host, deploy.port)") from None


def run_server(root: Path, *, host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Serve the project at ``root`` (a folder holding tidal.yaml, or the file) until interrupted (SIGINT
    or SIGTERM). ``host``, ``port`` and ``workers`` default to the spec's ``deploy`` section; the connection
    limits come from it (``deploy.timeouts``, ``deploy.max_connections``).

    The workspace and the prediction log are opened (and the log's database migrated) here, once, before
    listening: a missing tidal.yaml or an unreachable database raises its TidalError before anything
    starts, and several workers never race to create the same tables.
    """
    import logging.config

    from tidal.serve.connections import GuardedProtocol, Limits, TidalConfig, fit_open_files
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
    check_port(host, port)
    cap_env()  # processes started from here load BLAS/OpenMP with one thread
    logging.config.dictConfig(log_config())  # create_app and the warnings below log before uvicorn would set it up
    for warning in (exposure_warning(host), fit_open_files(deploy.max_connections)):
        if warning is not None:
            logger.warning("%s", warning)
    limits = Limits(header_s=deploy.timeouts.header_s, body_s=deploy.timeouts.body_s,
                    max_connections=deploy.max_connections)
    # proxy_headers off: tidal reads neither the client's address nor the scheme, so uvicorn's middleware
    # that rewrites them from X-Forwarded-* would only cost every request a layer; server_header off: the
    # answers do not advertise the server software. http: uvicorn's httptools protocol with the connection
    # guard; ws none: tidal has no WebSocket endpoint, so no upgrade hands a connection to another protocol.
    # limit_concurrency stays unset: the guard's connection cap replaces it (see tidal.serve.connections).
    options: dict[str, Any] = {"host": host, "port": port, "log_config": log_config(), "access_log": False,
                               "loop": "auto", "http": GuardedProtocol, "ws": "none", "lifespan": "on",
                               "timeout_graceful_shutdown": 10, "timeout_keep_alive": deploy.timeouts.keep_alive_s,
                               "proxy_headers": False, "server_header": False}
    if workers == 1:
        from tidal.serve.app import create_app

        _serve(TidalConfig(create_app(root), limits=limits, **options))
        return
    metrics_dir = tempfile.mkdtemp(prefix="tidal-metrics-")
    previous = {k: os.environ.get(k) for k in (ROOT_ENV, METRICS_ENV)}
    os.environ[ROOT_ENV] = str(root)
    os.environ[METRICS_ENV] = metrics_dir
    try:
        _serve(TidalConfig("tidal.serve.server:worker_app", factory=True, workers=workers, limits=limits, **options))
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve(config: Any) -> None:
    """Run uvicorn with ``config`` until it stops: what ``uvicorn.run`` does once it has built its config
    (tidal builds its own, :class:`~tidal.serve.connections.TidalConfig`, to carry the connection limits)."""
    import sys

    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    if config.workers == 1 and not server.started:
        sys.exit(STARTUP_FAILURE)


__all__ = ["METRICS_ENV", "ROOT_ENV", "check_port", "exposure_warning", "log_config", "run_server", "worker_app"]
