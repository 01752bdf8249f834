"""The Ray executor: steps, backtest strategies and search trials as Ray tasks (``storage.executor: ray``).

- ``ray``: a local Ray that tidal starts on demand (at the first task, never for a command that runs none)
  and shuts down when the workspace closes. It is started with ``address="local"``, so it is always its own,
  never a cluster another process started on this machine, and with a small object store and no dashboard.
- ``ray://host:port``: an existing cluster, through Ray Client. tidal connects at the first task and
  disconnects when the workspace closes; it never stops the cluster. Its nodes need tidal installed (the
  same version: a step function is sent by name and imported there) with the extras the project uses.

What a task gets and gives back: a step function (module level, never a closure: it is sent by name) and
its inputs, which the driver read from its stores; the task returns its outputs, which the driver stores.
So the data goes through Ray's object store and the stores stay in the driver, which is what lets a step
run on a node that cannot reach them (an artifact folder on the driver's disk, a SQLite file). The limit:
every input and output passes through the driver (see docs/ray.md).

Failures: a worker that dies (killed, out of memory, its node lost) is retried once (``max_retries=1``);
an exception raised by the step is not retried (it would raise again) and is raised in the driver as the
step raised it, so a failed step reads the same as on the local executor. A second death, or a cluster
that cannot be reached, is an :class:`~tidal.core.errors.ExecutorError` with one line.

This is the only module that imports ray, and only when a task is first submitted.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from tidal.core.errors import ExecutorError, TidalError
from tidal.core.ports import Task
from tidal.core.progress import listened, listening, report

R = TypeVar("R")

#: Retries of a task whose worker died (a step that raises is never retried).
MAX_RETRIES = 1
#: The object store of a local Ray that tidal starts: small, since the inputs of one step pass through it at a
#: time; Ray spills what does not fit to disk.
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2
#: Seconds to wait for a ``ray://`` address to accept a connection before saying it cannot be reached.
CONNECT_TIMEOUT_S = 5.0
#: Seconds between two looks at the progress a running step reported.
PROGRESS_POLL_S = 0.25
INSTALL_HINT = "install Ray with `pip install 'tidal[ray]'`, or set storage.executor: local"


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
          progress: Any = None) -> tuple[Any, dict[str, Any]]:
    """What runs on the worker: the step, and where it ran. ``progress``: a Ray queue that gets what the step
    reports (:func:`tidal.core.progress.report`: a network's epochs), for the driver to show."""
    import ray

    where = {"node": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid()}
    if progress is None:
        return fn(*args, **kwargs), where

    def forward(what: str, done: int, total: int) -> None:
        progress.put_nowait((what, done, total))  # a full queue raises, and report() drops that one

    with listening(forward):
        return fn(*args, **kwargs), where


def check_sendable(fn: Callable[..., Any]) -> None:
    """Refuse a function that cannot be sent by name: a lambda or a closure (it would carry what it closes
    over, a store perhaps, to the worker). A step function is a module-level function of its stage."""
    qualname = getattr(fn, "__qualname__", "")
    if "<locals>" in qualname or "<lambda>" in qualname or not getattr(fn, "__module__", None):
        raise TypeError(f"{getattr(fn, '__module__', '?')}.{qualname} is not a module-level function: a step sent "
                        "to another process must be one, with its inputs as arguments")


class RayTask(Generic[R]):
    """A submitted Ray task."""

    def __init__(self, executor: RayExecutor, ref: Any, label: str, progress: Any = None) -> None:
        self._executor, self.ref, self.label, self._progress = executor, ref, label, progress
        self.where: dict[str, Any] | None = None

    def result(self) -> R:
        if self._progress is not None:  # show what the step reports while it runs, as a local step does
            ray = self._executor._ray()
            while not ray.wait([self.ref], num_returns=1, timeout=PROGRESS_POLL_S)[0]:
                self._drain()
            self._drain()
        value, self.where = self._executor._get(self.ref, self.label)
        return value  # type: ignore[no-any-return]

    def _drain(self) -> None:
        try:
            reported = self._progress.get_nowait_batch(self._progress.qsize())
        except Exception:  # progress is never worth failing a step for
            return
        for what, done, total in reported:
            report(what, done, total)

    def done(self) -> bool:
        ray = self._executor._ray()
        ready, _ = ray.wait([self.ref], num_returns=1, timeout=0)
        return bool(ready)


class RayExecutor:
    """Runs each call as a Ray task (see the module)."""

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        """``address``: ``ray://host:port`` of a cluster to join; None: a local Ray, started on demand."""
        self.address = address
        self._lock = threading.Lock()
        self._module: Any = None
        self._remote: Any = None
        self._owned = False  # whether this executor started (or connected) the Ray it uses
        self._slots: int | None = None
        self._queue: Any = None  # the progress queue, made at the first step somebody watches

    # -- connecting ---------------------------------------------------------------------------------
    def _ray(self) -> Any:
        with self._lock:
            if self._module is None:
                self._module = self._connect()
            return self._module

    def _connect(self) -> Any:
        try:
            import ray
        except ImportError as exc:
            raise ExecutorError("storage.executor is ray, but Ray is not installed", hint=INSTALL_HINT) from exc
        if ray.is_initialized():  # the caller's own Ray (an SDK user who called ray.init): used, never shut down
            return ray
        where = self.address or "a local Ray"
        if self.address is not None:
            _check_reachable(self.address)
        try:
            if self.address is not None:
                ray.init(self.address, logging_level=logging.ERROR, log_to_driver=False)
            else:
                ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                         object_store_memory=LOCAL_OBJECT_STORE_BYTES, logging_level=logging.ERROR, log_to_driver=False,
                         configure_logging=False)
        except Exception as exc:  # Ray's own errors: one line, not its traceback
            raise ExecutorError(f"could not start or join {where}: {_one_line(exc)}",
                                hint="check storage.executor (ray, or ray://host:port of a running cluster)") from exc
        self._owned = True
        return ray

    @property
    def slots(self) -> int:
        """The cluster's CPUs (each task asks for one): how many tasks run at once."""
        if self._slots is None:
            ray = self._ray()
            self._slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        return self._slots

    # -- running ------------------------------------------------------------------------------------
    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> RayTask[R]:
        check_sendable(fn)
        ray = self._ray()
        if self._remote is None:
            self._remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(_call)
        label = f"{fn.__module__}.{fn.__qualname__}"
        progress = self._progress_queue() if listened() else None
        try:
            ref = self._remote.remote(fn, args, kwargs, progress)
        except Exception as exc:
            raise ExecutorError(f"Ray did not take the task {label}: {_one_line(exc)}",
                                hint="is the cluster still running? (`ray status` on its head node)") from exc
        return RayTask(self, ref, label, progress)

    def _progress_queue(self) -> Any:
        """One queue (a Ray actor that takes no CPU) for the progress of this executor's steps; None when Ray
        cannot make one (the steps run without showing their progress)."""
        if self._queue is None:
            try:
                from ray.util.queue import Queue

                self._queue = Queue(maxsize=10_000, actor_options={"num_cpus": 0})
            except Exception:
                self._queue = False
        return None if self._queue is False else self._queue  # not `or`: an empty queue is falsy (its len)

    def run(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        return self.submit(fn, *args, **kwargs).result()

    def wait(self, tasks: Sequence[Task[Any]]) -> list[Task[Any]]:
        if not tasks:
            return []
        ray = self._ray()
        by_ref = {t.ref: t for t in tasks if isinstance(t, RayTask)}
        ready, _ = ray.wait(list(by_ref), num_returns=1)
        ready, _ = ray.wait(list(by_ref), num_returns=len(by_ref), timeout=0)  # with any others done meanwhile
        return [by_ref[r] for r in ready]

    def _get(self, ref: Any, label: str) -> tuple[Any, dict[str, Any]]:
        ray = self._ray()
        try:
            value, where = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            # the step raised: raise what it raised, as the local executor would (never retried)
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise ExecutorError(f"{label} failed on Ray: {_one_line(exc)}") from exc
        except ray.exceptions.RayError as exc:
            raise ExecutorError(f"the Ray worker running {label} died, and again when it was retried "
                                f"({MAX_RETRIES} retry): {_one_line(exc)}",
                                hint="see the worker's log on its node (ray logs), and its memory") from exc
        except ConnectionError as exc:
            raise ExecutorError(f"lost the Ray cluster {self.address or ''} while it ran {label}: "
                                f"{_one_line(exc)}", hint="is the cluster still running?") from exc
        return value, dict(where)

    def close(self) -> None:
        """Shut down the Ray this executor started or joined (a joined cluster keeps running)."""
        with self._lock:
            if self._module is not None and self._owned:
                self._module.shutdown()
            self._module, self._remote, self._owned, self._slots, self._queue = None, None, False, None, None


def _check_reachable(address: str) -> None:
    """A ``ray://`` address that accepts no connection, said at once (Ray Client waits 30 s, then says less)."""
    parts = urlsplit(address)
    if parts.scheme != "ray" or not parts.hostname:
        raise ExecutorError(f"storage.executor {address!r} is not a Ray address",
                            hint="use ray (a local Ray) or ray://host:port (the Ray Client port of a cluster, "
                                 "10001 by default)")
    port = parts.port or 10001
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ExecutorError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
                            hint="start it (`ray start --head`, its Ray Client port is 10001 by default) or fix "
                                 "storage.executor") from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, TidalError):
        return text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


__all__ = ["MAX_RETRIES", "RayExecutor", "RayTask", "check_sendable"]
