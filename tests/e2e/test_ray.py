"""The Ray executor (issue #16, point 2) against a real Ray cluster that this module starts: a head node
(`ray start --head`, its Ray Client port) and a second node (`ray start --address=...`) on this machine, one
CPU each, in a temporary folder of their own; the metadata store on PostgreSQL (a fresh schema per test).

The cluster is stopped by killing the process groups this module started (never `ray stop`, which would stop
every Ray on the machine); its workers exit with their raylet. Real data (scikit-learn's breast cancer), a
real estimator, few trials.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.contract.conftest import postgres_url  # noqa: F401  (the fixture: a fresh schema per test)
from tests.unit.loop.test_executor_port import _project
from tidal import Workspace
from tidal.core.entities import RunStatus
from tidal.core.errors import ExecutorError, TidalError
from tidal.executors.ray import RayExecutor

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2] / "src"
RAY_STEPS = ("validate", "split", "profile", "train", "evaluate", "gate")


@dataclass
class Cluster:
    address: str  # ray://127.0.0.1:<client port>
    groups: list[int]
    modules: Path  # a folder on the workers' PYTHONPATH (and the test's sys.path): the estimators below
    marker: Path  # where DiesOnce notes that it died


#: Estimators that kill the Ray worker fitting them (only where TIDAL_TEST_KILL is set: on this module's
#: cluster, never in the test process): always, or the first time.
KILLERS = """import os, signal
from pathlib import Path
from sklearn.linear_model import LogisticRegression


class AlwaysDies(LogisticRegression):
    def fit(self, X, y, sample_weight=None):
        if os.environ.get("TIDAL_TEST_KILL"):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().fit(X, y, sample_weight)


class DiesOnce(LogisticRegression):
    def fit(self, X, y, sample_weight=None):
        marker = os.environ.get("TIDAL_TEST_KILL")
        if marker and not os.path.exists(marker):
            Path(marker).write_text("died")
            os.kill(os.getpid(), signal.SIGKILL)
        return super().fit(X, y, sample_weight)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(groups: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
        time.sleep(1.0)


#: A test cluster without token authentication: otherwise Ray writes a token into ~/.ray (outside the test's
#: folders), and this module's local Ray would too.
RAY_ENV = {"RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module", autouse=True)
def _ray_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in RAY_ENV.items():
            mp.setenv(key, value)
        yield


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Two Ray nodes on this machine, with tidal (this checkout's) importable on their workers."""
    ray_cli = str(Path(sys.executable).parent / "ray")
    temp = Path(tempfile.mkdtemp(prefix="tr", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    modules = temp / "modules"
    modules.mkdir()
    (modules / "tidal_test_killers.py").write_text(KILLERS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), str(modules),
                                                                     os.environ.get("PYTHONPATH")])),
           "TIDAL_TEST_KILL": str(temp / "died-once"),
           # the Ray Client server forks a server per client; with gRPC's fork handlers on, that fork fails here
           "GRPC_ENABLE_FORK_SUPPORT": "0", "RAY_USAGE_STATS_ENABLED": "0", **RAY_ENV}
    gcs, client = _free_port(), _free_port()
    common = ["--num-cpus=1", "--object-store-memory=80000000", "--dashboard-agent-listen-port=0",
              "--disable-usage-stats"]
    groups: list[int] = []
    try:
        with open(temp / "head.log", "w") as log:
            head = subprocess.Popen([ray_cli, "start", "--head", f"--port={gcs}", f"--ray-client-server-port={client}",
                                     f"--temp-dir={temp}", "--include-dashboard=false", *common],
                                    env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            groups.append(head.pid)
            assert head.wait(timeout=120) == 0, (temp / "head.log").read_text()[-2000:]
        found = re.search(r"ray start --address='([^']+)'", (temp / "head.log").read_text())
        assert found, (temp / "head.log").read_text()[-2000:]
        with open(temp / "node.log", "w") as log:
            node = subprocess.Popen([ray_cli, "start", f"--address={found.group(1)}", *common], env=env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            groups.append(node.pid)
            assert node.wait(timeout=120) == 0, (temp / "node.log").read_text()[-2000:]
        yield Cluster(address=f"ray://127.0.0.1:{client}", groups=groups, modules=modules,
                      marker=temp / "died-once")
    finally:
        _stop(groups)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def s3_bucket() -> Iterator[str]:
    """An S3 bucket on moto's S3 server, started here on a free loopback port (and stopped by its pid); the
    endpoint and dummy credentials are set for this module (botocore reads AWS_ENDPOINT_URL)."""
    pytest.importorskip("s3fs")
    moto_server = Path(sys.executable).parent / "moto_server"
    if not moto_server.exists():
        pytest.skip("moto[server] is not installed")
    port = _free_port()
    server = subprocess.Popen([str(moto_server), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
                               "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
                mp.setenv(key, value)
            import s3fs

            deadline = time.monotonic() + 30
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            bucket = f"tidal-ray-{port}"
            s3fs.S3FileSystem(skip_instance_cache=True).mkdir(bucket)
            yield bucket
    finally:
        server.terminate()
        server.wait(timeout=10)


# -- what the tasks of the failure test run: sent by value (this module is not importable on the workers) ----
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _die_once(marker: str) -> int:
    """Kill this worker the first time (SIGKILL: no goodbye), answer the second."""
    if not os.path.exists(marker):
        Path(marker).write_text("died")
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


def _die(counter: str) -> None:
    with open(counter, "a") as f:
        f.write("x")
    os.kill(os.getpid(), signal.SIGKILL)


def _epochs(n: int) -> int:
    from tidal.core.progress import report

    for i in range(1, n + 1):
        time.sleep(0.3)
        report("epoch", i, n)
    return n


def _raise(counter: str) -> None:
    with open(counter, "a") as f:
        f.write("x")
    raise ValueError("column 'x' has 3 values the model never saw")


def test_a_run_and_a_backtest_on_the_cluster_give_the_local_model(
        cluster: Cluster, tmp_path: Path, postgres_url: str, s3_bucket: str) -> None:  # noqa: F811
    """PostgreSQL for the metadata, S3 (moto's server) for the artifacts, Ray for the steps: no local state
    besides tidal.yaml and its data."""
    local = Workspace.open(_project(tmp_path / "local", search=False))
    local.run()
    on_ray = Workspace.open(_project(tmp_path / "ray", search=False), store_url=postgres_url,
                            artifacts_url=f"s3://{s3_bucket}/tidal", executor=cluster.address)
    try:
        result = on_ray.run()
        assert result.run.status is RunStatus.SUCCEEDED and result.run.info["executor"] == "ray"
        nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        assert len(nodes) == 2
        steps = {s.name: s for s in on_ray.store.list_steps(result.run.id)}  # read back from PostgreSQL
        for name in RAY_STEPS:
            where = steps[name].outputs["ran_on"]
            assert where["pid"] != os.getpid() and where["node"] in nodes, name
        assert "ran_on" not in steps["collect"].outputs  # the project's source is read where the project is
        champion, local_champion = on_ray.registry.champion("port"), local.registry.champion("port")
        assert champion is not None and local_champion is not None
        assert champion.artifact_digest == local_champion.artifact_digest  # the same model bytes as local
        import s3fs

        stored = s3fs.S3FileSystem(skip_instance_cache=True).find(f"{s3_bucket}/tidal")
        assert any(path.endswith(champion.artifact_digest) for path in stored)  # the model is in the bucket
        assert not (tmp_path / "ray" / ".tidal" / "artifacts").exists()

        assert on_ray.backtest().to_dict() == local.backtest().to_dict()  # periodic beside the loop, on Ray
    finally:
        on_ray.close()
        local.close()
    assert not ray.is_initialized()  # disconnected; the cluster itself runs on (the next tests use it)


def test_search_trials_run_at_once_on_the_cluster_each_a_child_run(
        cluster: Cluster, tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    with Workspace.open(_project(tmp_path / "p"), store_url=postgres_url, executor=cluster.address) as ws:
        result = ws.run()
        search = next(s for s in result.steps if s.name == "search").outputs
        assert search["trials"] == search["new_trials"] == 3
        trials = sorted((r for r in ws.store.list_runs("port") if r.trigger == "search"),
                        key=lambda r: r.info["trial"])
        assert [t.info["trial"] for t in trials] == [0, 1, 2]
        assert all(t.info["parent_run"] == result.run.id and t.status is RunStatus.SUCCEEDED for t in trials)
        assert {t.info["state"] for t in trials} <= {"complete", "pruned"}
        assert ws.store.get_metrics(trials[0].id, "fit_seconds")  # its curves and metrics, logged by the driver
        # two CPUs: the first two trials were fitted at once (the second began before the first ended)
        assert trials[1].started_at < trials[0].ended_at  # type: ignore[operator]
        again = ws.run()  # the study is in PostgreSQL: the same search again runs no trial
        assert next(s for s in again.steps if s.name == "search").outputs["new_trials"] == 0


def test_a_killed_worker_is_retried_once_and_a_second_death_fails_with_the_cause(
        cluster: Cluster, tmp_path: Path) -> None:
    executor = RayExecutor(cluster.address)
    try:
        task = executor.submit(_die_once, str(tmp_path / "died"))
        pid = task.result()
        assert (tmp_path / "died").read_text() == "died" and pid != os.getpid()
        assert task.where is not None and task.where["pid"] == pid

        with pytest.raises(ExecutorError) as died:
            executor.run(_die, str(tmp_path / "deaths"))
        assert (tmp_path / "deaths").read_text() == "xx"  # the first try and its one retry
        message = str(died.value)
        assert message.startswith(f"the Ray worker running {__name__}._die died, and again when it was retried")
        assert "\n" not in message

        with pytest.raises(ValueError, match=r"^column 'x' has 3 values the model never saw$"):
            executor.run(_raise, str(tmp_path / "raised"))
        assert (tmp_path / "raised").read_text() == "x"  # an exception is the step's: never retried
    finally:
        executor.close()


def test_a_train_step_whose_worker_dies_is_retried_once_then_fails_the_run_with_the_cause(
        cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(cluster.modules))  # the driver imports the estimator too (to infer the task)
    root = _project(tmp_path / "p", search=False)
    spec = (root / "tidal.yaml").read_text()
    (root / "tidal.yaml").write_text(spec.replace("sklearn.ensemble.HistGradientBoostingClassifier",
                                                  "tidal_test_killers.DiesOnce").replace("{max_iter: 10}",
                                                                                         "{max_iter: 500}"))
    with Workspace.open(root, executor=cluster.address) as ws:
        result = ws.run()  # the first worker died in the train step; its retry fitted the model
        assert cluster.marker.read_text() == "died" and result.run.status is RunStatus.SUCCEEDED
        train = next(s for s in result.steps if s.name == "train")
        assert train.outputs["ran_on"]["pid"] != os.getpid()

    (root / "tidal.yaml").write_text(spec.replace("sklearn.ensemble.HistGradientBoostingClassifier",
                                                  "tidal_test_killers.AlwaysDies").replace("{max_iter: 10}",
                                                                                           "{max_iter: 500}"))
    with Workspace.open(root, executor=cluster.address) as ws, pytest.raises(ExecutorError) as died:
        ws.run()
    message = str(died.value)
    assert message.startswith("the Ray worker running tidal.loop.registration.fit_stored died, and again when it "
                              "was retried (1 retry): ") and "\n" not in message
    with Workspace.open(root) as ws:  # the run and its train step say so
        failed = ws.store.list_runs("port")[0]
        assert failed.status is RunStatus.FAILED and failed.error == message
        steps = {s.name: s for s in ws.store.list_steps(failed.id)}
        assert steps["train"].status.value == "failed" and steps["train"].outputs["error"] == message


def test_what_a_step_reports_on_a_worker_reaches_the_driver_as_it_runs(cluster: Cluster) -> None:
    from tidal.core.progress import listening

    seen: list[tuple[str, int, int, float]] = []
    executor = RayExecutor(cluster.address)
    try:
        assert executor.run(_epochs, 1) == 1  # connected, nobody listening: no progress queue
        assert executor._queue is None
        with listening(lambda what, done, total: seen.append((what, done, total, time.monotonic()))):
            started = time.monotonic()
            assert executor.run(_epochs, 3) == 3
            ended = time.monotonic()
    finally:
        executor.close()
    assert [s[:3] for s in seen] == [("epoch", 1, 3), ("epoch", 2, 3), ("epoch", 3, 3)]
    assert started < seen[0][3] < ended - 0.2  # shown while the step ran, not all at its end


def test_a_step_that_fails_on_the_cluster_fails_the_run_as_it_does_locally(
        cluster: Cluster, tmp_path: Path) -> None:
    errors = []
    for name, executor in (("local", "local"), ("ray", cluster.address)):
        root = _project(tmp_path / name)
        (root / "tidal.yaml").write_text("""version: 1
name: port
data: {source: rows.csv, target: target, time: t}
model: {estimator: sklearn.ensemble.HistGradientBoostingClassifier, params: {max_iter: -3}}
""")
        with Workspace.open(root, executor=executor) as ws, pytest.raises(TidalError) as err:
            ws.run()
        errors.append(str(err.value))
        with Workspace.open(root) as ws:
            failed = ws.store.list_runs("port")[0]
            assert failed.status is RunStatus.FAILED and failed.error == str(err.value)
    assert errors[0] == errors[1] and "max_iter" in errors[0]


def test_an_unreachable_cluster_is_one_line_from_the_cli(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    port = _free_port()
    proc = subprocess.run([sys.executable, "-m", "tidal", "run"], cwd=root, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TIDAL_EXECUTOR": f"ray://127.0.0.1:{port}",
                                            "COLUMNS": "200", "NO_COLOR": "1"})
    assert proc.returncode == 2, proc.stderr
    assert f"cannot reach the Ray cluster at ray://127.0.0.1:{port}" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_executor_ray_starts_a_local_ray_on_demand_and_stops_it() -> None:
    executor = RayExecutor(None)
    assert not ray.is_initialized()  # nothing started by opening it
    try:
        assert executor.run(os.getpid) != os.getpid() and executor.slots == (os.cpu_count() or 1)
    finally:
        executor.close()
    assert not ray.is_initialized()
