"""A real workspace that has run a small real data set (Elec2's first 3,000 rows), and ``tidal ui`` over it
in a subprocess on a free loopback port, with its log in a file the tests scan."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.serve.server import free_port

REPO = Path(__file__).resolve().parents[2]
ELEC2 = REPO / "examples" / "elec2"


def make_project(root: Path, store_url: str | None = None) -> Path:
    """Elec2's first 3,000 rows: v1 and v2 (validated, v2 the champion), v3 rejected by an impossible gate,
    50 served predictions with labels, one monitoring report and one tick of the loop."""
    from tidal.workspace import Workspace

    shutil.copytree(ELEC2, root)
    lines = gzip.decompress((ELEC2 / "data" / "elec2.csv.gz").read_bytes()).decode().splitlines()
    (root / "data" / "elec2.csv.gz").unlink()
    (root / "data" / "elec2.csv").write_text("\n".join(lines[:3001]) + "\n")
    spec = (root / "tidal.yaml").read_text().replace("data/elec2.csv.gz", "data/elec2.csv")
    if store_url is not None:
        spec += f"storage: {{store: '{store_url}'}}\n"
    for n, extra in ((20, ""), (25, ""), (30, "    - accuracy >= 0.999\n")):
        text = spec.replace("max_iter: 200", f"max_iter: {n}")
        text = text.replace("    - accuracy >= champion - 0.03   # and at most", extra + "    - accuracy >= "
                            "champion - 0.03   # and at most")
        (root / "tidal.yaml").write_text(text)
        with Workspace.open(root) as ws:
            ws.run()
    with Workspace.open(root) as ws:
        rows = pd.read_csv(root / "data" / "elec2.csv").tail(50)
        answer = ws.predict(rows.drop(columns=["up"]))
        ws.feedback([{"prediction_id": i, "label": y} for i, y in zip(answer.prediction_ids, rows["up"], strict=True)])
        ws.monitor()
        ws.loop_once()
    return root


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("ui") / "elec2")


@pytest.fixture(scope="session")
def admin(project: Path) -> str:
    from tidal.workspace import Workspace

    with Workspace.open(project) as ws:
        return ws.tokens.create("root", role="admin")[1]


class UiServer:
    """``tidal ui`` in a subprocess; stopped by its own pid."""

    def __init__(self, root: Path, *args: str) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root.parent / f"ui-{self.port}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO / "src")}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "tidal", "-C", str(root), "ui", "--port",
                                          str(self.port), *args], stdout=out, stderr=subprocess.STDOUT, env=env)

    def wait(self, timeout: float = 30.0) -> UiServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"tidal ui exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/v1/openapi.json", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"tidal ui did not answer in {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def ui(project: Path, admin: str) -> Iterator[UiServer]:
    srv = UiServer(project)
    try:
        yield srv.wait()
    finally:
        srv.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
