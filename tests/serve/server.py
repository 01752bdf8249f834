"""A real ``tidal.serve`` server in a subprocess, on a free loopback port, for the serve tests.

Each :class:`ServerProcess` starts ``run_server`` (or, with ``cli=True``, the ``tidal serve`` command in the
project folder, as a user types it) in its own Python process (its output goes to a log file the test can
read), waits until ``/readyz`` answers 200, and is stopped or SIGKILLed by its own pid only: a test never
touches a process it did not start.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import httpx

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nobody listens on now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``tidal.serve.run_server(root, workers=...)`` in a subprocess."""

    def __init__(self, root: Path, *, workers: int = 1, log: Path | None = None, nofile: int | None = None,
                 env: dict[str, str] | None = None, bundle: bool = False, args: list[str] | None = None,
                 cli: bool = False) -> None:
        self.root = root
        #: ``tidal serve`` run in ``root`` (a project folder) as a user runs it, rather than run_server.
        self.cli = cli
        #: more ``tidal serve`` options, for a bundle (``--log-url URL``)
        self.args = args or []
        #: ``root`` is a bundle (tidal export), served by ``tidal serve --bundle`` rather than run_server.
        self.bundle = bundle
        self.workers = workers
        #: The server's limit on open files (RLIMIT_NOFILE, soft and hard), where a test sets one.
        self.nofile = nofile
        self.env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log or root / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, ready: bool = True, timeout: float = 30.0) -> ServerProcess:
        code = ("import sys; from pathlib import Path; from tidal.serve import run_server; "
                "run_server(Path(sys.argv[1]), host='127.0.0.1', port=int(sys.argv[2]), workers=int(sys.argv[3]))")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        nofile = self.nofile

        def limit() -> None:  # runs in the child, before it executes Python
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with open(self.log, "ab") as out:
            serve = [sys.executable, "-m", "tidal", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                     "--workers", str(self.workers), *self.args]
            argv = ([*serve, "--bundle", str(self.root)] if self.bundle else serve if self.cli
                    else [sys.executable, "-c", code, str(self.root), str(self.port), str(self.workers)])
            self.proc = subprocess.Popen(argv, cwd=self.root if self.cli else REPO, stdout=out,
                                         stderr=subprocess.STDOUT, env=env,
                                         preexec_fn=limit if nofile is not None else None)
        if ready:
            try:
                self.wait_ready(timeout)
            except BaseException:  # a server that never became ready is stopped here: no `with` will stop it
                self.kill()
                raise
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the server was not ready within {timeout} s:\n{self.log_text()}")

    def open_files(self) -> int:
        """How many file descriptors the server process holds now (from /proc)."""
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the server process and, with several workers, its worker processes (by their pids)."""
        if self.proc is not None and self.proc.poll() is None:
            children = _children(self.proc.pid)
            self.proc.send_signal(signal.SIGKILL)
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        children = _children(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
        for pid in children:  # workers the supervisor should have stopped; make sure
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> ServerProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _children(pid: int) -> list[int]:
    """The direct children of ``pid`` (uvicorn's worker processes), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def eventually(probe: Callable[[], T | None], timeout: float = 10.0, what: str = "the condition") -> T:
    """Poll ``probe`` until it returns something truthy (bounded in time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        time.sleep(0.05)
