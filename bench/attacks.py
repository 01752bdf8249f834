"""Issue #9's attacks, rerun with figures: the duplicate-key request, promotions killed at random points,
the hostile model gallery and an idle-connection flood, each against the real parts (a served project on
a real port, SQLite and PostgreSQL stores, real subprocesses killed with SIGKILL).

    PYTHONPATH=.:src .venv/bin/python bench/attacks.py [--kills 40] [--flood 20000] [--requests 200]

It reuses the test suite's helpers (``tests/``), so it runs from the repository root. PostgreSQL is
attacked too when ``TIDAL_TEST_POSTGRES_URL`` is set. Every attack prints one line of figures and the
script exits 1 if any of them found a hole (a corrupted read, an alias without its event, a hostile file
that ran, a probe that failed), so it can not report a pass it did not see.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

from tests.conftest import ELEC2  # noqa: E402
from tests.contract import test_atomic as atomic  # noqa: E402
from tests.serve.conftest import write_spec  # noqa: E402
from tests.serve.server import ServerProcess  # noqa: E402
from tests.serve.test_connections import Flood  # noqa: E402
from tests.serve.test_log_integrity import ATTACK, JSON_HEADERS, ROW, same  # noqa: E402
from tests.unit.train.hostile_models import gallery  # noqa: E402

HOLES: list[str] = []


def say(name: str, figures: str, holes: list[str]) -> None:
    print(f"{name}: {figures}" + (f"  HOLES: {holes[:3]}" if holes else "  (no hole)"), flush=True)
    HOLES.extend(f"{name}: {h}" for h in holes)


def project(root: Path) -> Path:
    """The serve tests' project: Elec2 cut to 6,000 rows, trained once (version 1 is the champion)."""
    from tidal import Workspace

    (root / "data").mkdir(parents=True)
    lines = gzip.decompress((ELEC2 / "data" / "elec2.csv.gz").read_bytes()).decode().splitlines()
    (root / "data" / "elec2.csv").write_text("\n".join(lines[:6001]) + "\n")
    write_spec(root)
    with Workspace.open(root) as ws:
        ws.run()
    return root


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "tidal", "-C", str(root), *args], capture_output=True,
                          text=True, env=env, timeout=300)


def duplicate_keys(root: Path, requests: int) -> None:
    """The body with ``instances`` twice, among ordinary requests; then everything that reads the log."""
    from tidal import Workspace

    statuses: Counter[int] = Counter()
    with ServerProcess(root) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        for i in range(requests):
            body = ATTACK if i % 2 == 0 else httpx.Request("POST", "/", json={"instances": [ROW]}).content
            statuses[http.post("/predict", content=body, headers=JSON_HEADERS).status_code] += 1
    holes = []
    with Workspace.open(root) as ws:
        window = ws.predictions.window(model="elec2")
        wrong = sum(not same(p.inputs, ROW) for p in window)
        skipped = len(ws.predictions.skipped())
    if wrong or skipped:
        holes.append(f"{wrong} stored rows differ from the row predicted, {skipped} batches unreadable")
    codes = {cmd: cli(root, *cmd.split()).returncode
             for cmd in ("monitor --json", "loop --once --json", "predictions check")}
    holes += [f"`tidal {cmd}` exited {rc}" for cmd, rc in codes.items() if rc != 0]
    say("duplicate-key request", f"{requests} requests (half with 'instances' twice): answers {dict(statuses)}; "
        f"{len(window)} stored predictions read back, {wrong} differ from what was predicted, {skipped} "
        f"unreadable; exit codes {codes}", holes)


def promotions_killed(url: str, label: str, kills: int, workdir: Path) -> None:
    """Writers promoting in a loop, each SIGKILLed 0-30 ms after it starts; alias and event must agree."""
    from tidal.storage import open_metadata_store

    with open_metadata_store(url) as store:
        atomic._validated(store, 3)
    rng = random.Random(9)
    holes, moves = [], 0
    between = atomic._start_writer(url, "between", workdir)
    between.communicate(timeout=60)
    for _ in range(kills):
        proc = atomic._start_writer(url, "stream", workdir)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr
        time.sleep(rng.uniform(0.0, 0.03))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        try:
            _, stored = atomic._consistent(url)
            moves = len(stored)
        except AssertionError as exc:
            holes.append(f"alias and events disagree: {exc}")
    say(f"promotions killed ({label})", f"1 writer killed between the alias move and its event, then {kills} "
        f"killed at random 0-30 ms: {moves} promotions stored, {kills + 1 - len(holes)} of {kills + 1} checks "
        "found the champion where the last alias.moved event says", holes)


def hostile_gallery(workdir: Path) -> None:
    from tidal.core.errors import UntrustedModel
    from tidal.train.flavors import get_flavor

    target = workdir / "pwned"
    files = gallery(target)
    refused, loaded = 0, []
    for name, data in files.items():
        try:
            get_flavor("sklearn").load(data)
            loaded.append(name)
        except UntrustedModel:
            refused += 1
    time.sleep(1)  # a Popen gadget would run beside us
    written = [p.name for p in workdir.iterdir() if p.name.startswith("pwned")]
    holes = [f"loaded {n}" for n in loaded] + [f"wrote {w}" for w in written]
    say("hostile model gallery", f"{len(files)} files: {refused} refused before anything was built, "
        f"{len(loaded)} loaded, {len(written)} files written by a gadget", holes)


def idle_flood(root: Path, total: int) -> None:
    """``total`` idle connections opened against the default server (at most 5,000 held at once), while a
    client probes on a kept-alive connection and on fresh ones."""
    probes, failed = 0, []
    with ServerProcess(root) as server:
        flood = Flood(server.port, keep=min(5000, total), rate=2000, budget=total)
        flood.start()
        try:
            with httpx.Client(base_url=server.url, timeout=5) as keep:
                while flood.is_alive() and flood.opened < total:
                    for http in (keep, httpx.Client(base_url=server.url, timeout=5)):
                        probes += 1
                        try:
                            status = http.post("/predict", json={"instances": [ROW]}).status_code
                            if status != 200:
                                failed.append(str(status))
                        except httpx.HTTPError as exc:
                            failed.append(type(exc).__name__)
                        if http is not keep:
                            http.close()
                    time.sleep(0.02)
        finally:
            flood.stop.set()
            flood.join(30)
    if flood.opened < total:
        failed.append(f"the flood stopped after {flood.opened} connections")
    share = 100 * (probes - len(failed)) / max(1, probes)
    say("idle-connection flood", f"{flood.opened} idle connections opened ({flood.failed} not accepted); "
        f"{probes} probes, {probes - len(failed)} answered 200 ({share:.1f} %)", failed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--flood", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = project(work / "elec2")
        duplicate_keys(root, args.requests)
        (work / "sqlite").mkdir()
        promotions_killed(f"sqlite:///{work / 'sqlite' / 'meta.db'}", "SQLite", args.kills, work / "sqlite")
        base = os.environ.get("TIDAL_TEST_POSTGRES_URL")
        if base:
            import sqlalchemy as sa
            from tests.contract.conftest import postgres_schema_url

            schema = f"tidal_attack_{uuid.uuid4().hex[:12]}"
            admin = sa.create_engine(base, poolclass=sa.pool.NullPool)
            with admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            try:
                (work / "pg").mkdir()
                promotions_killed(postgres_schema_url(base, schema), "PostgreSQL", args.kills, work / "pg")
            finally:
                with admin.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                admin.dispose()
        (work / "gallery").mkdir()
        hostile_gallery(work / "gallery")
        idle_flood(root, args.flood)
    print(f"{len(HOLES)} holes found" if HOLES else "no hole found")
    return 1 if HOLES else 0


if __name__ == "__main__":
    sys.exit(main())
