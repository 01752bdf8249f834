"""The composition root and public SDK: settings → adapters → services.

Usage::

    import tidal

    ws = tidal.Workspace.open("examples/elec2")
    result = ws.run()                 # collect → validate → split → profile → train → evaluate → gate → register
    print(result.model.version, result.metrics["accuracy"])
    ws.models.get("elec2:champion")
    ws.promote("elec2", 1)
    ws.events()

The CLI, and later the server and the dashboard, call only this class, so a behaviour has one
implementation.
"""

from __future__ import annotations

import builtins
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidal.core.clock import SystemClock
from tidal.core.entities import ArchiveOutcome, Event, LogCheck, LogDay, Report, Run, RunStatus
from tidal.core.errors import ModelNotFound, ReportNotFound, SourceError, SpecError, TidalError
from tidal.core.ports import ArtifactStore, Clock, MetadataStore, PredictionLog
from tidal.core.settings import Settings
from tidal.data.sources.base import url_scheme
from tidal.executors import open_executor
from tidal.loop.backtest import BacktestResult, Progress, run_backtest
from tidal.loop.context import LoopContext
from tidal.loop.controller import LEASE_S, Controller, TickReport
from tidal.loop.liveness import RUN_HEARTBEAT_S, mark_abandoned
from tidal.loop.outcomes import describe, failure_line
from tidal.loop.pipeline import RunResult, TrainingPipeline
from tidal.loop.runner import StepListener
from tidal.monitor.embedding import EmbeddingCache
from tidal.predict.local import Answer, LocalPredictor
from tidal.registry import CHALLENGER, CHAMPION, Registry
from tidal.spec import Spec, default_spec_yaml, load_spec
from tidal.storage import open_artifact_store, open_metadata_store
from tidal.train.tracking import Tracker
from tidal.workspace.catalog import Models, RunDetail, Runs, Snapshots
from tidal.workspace.control import LoopControl
from tidal.workspace.tokens import Tokens
from tidal.workspace.tokens import local_actor as _local_actor

if TYPE_CHECKING:
    import pandas as pd

SPEC_FILE = "tidal.yaml"
EXAMPLES = ("elec2", "digits", "mnist", "digits-drift")


def examples_dir() -> Path:
    """Where the bundled example projects are (inside the wheel, or the source checkout)."""
    packaged = Path(str(resources.files("tidal"))) / "_examples"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "examples"


def _project_name(folder: str) -> str:
    """A valid project name from a folder name (``my data`` → ``my-data``, ``2024`` → ``p2024``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", folder).strip("-.")[:63] or "project"
    return name if name[0].isalpha() else f"p{name}"[:64]


def _source_for(root: Path, source: str) -> str:
    """``source`` (given from the current folder) as tidal.yaml in ``root`` names it: a path relative to
    ``root`` when it lies inside, absolute otherwise; URLs (``s3://``, ``sqlite:///``, SQL URLs) are kept
    as written, and globs only made relative to ``root``. A file that is not there is refused."""
    if url_scheme(source) is not None:
        return source
    full = Path(os.path.abspath(Path(source).expanduser()))
    if not re.search(r"[*?\[]", source):
        if full.is_dir():
            raise SourceError(f"data source {source!r} is a folder, not a file ({full})",
                              hint=f"name a file, or a glob such as {source.rstrip('/')}/*.csv")
        if not full.is_file():
            raise SourceError(f"data source {source!r} not found: no file {full}",
                              hint="give the path from the folder you run tidal in, or an absolute one")
    try:
        return full.relative_to(Path(os.path.abspath(root))).as_posix()
    except ValueError:
        return str(full)


class Workspace:
    """A tidal project: its spec, its stores and the services over them."""

    def __init__(self, spec: Spec, settings: Settings, *, clock: Clock | None = None) -> None:
        self.spec = spec
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.store: MetadataStore = open_metadata_store(settings.store_url)
        self.artifacts: ArtifactStore = open_artifact_store(settings.artifacts_url)
        self.executor = open_executor(settings.executor)
        self.registry = Registry(self.store, self.artifacts, self.clock)
        self.runs = Runs(self)
        self.models = Models(self)
        self.snapshots = Snapshots(self)
        self.tokens = Tokens(self)
        self.loop = LoopControl(self)
        self._predictions: PredictionLog | None = None
        self._local: LocalPredictor | None = None
        # an image model's embedding reference, made once per version for every monitoring pass of this workspace
        self._embeddings = EmbeddingCache()

    @property
    def predictions(self) -> PredictionLog:
        """The prediction log (opened on first use: most commands never need it)."""
        if self._predictions is None:
            from tidal.storage import open_prediction_log

            # with the artifact store: where its archive goes (monitor.retention, tidal predictions archive)
            self._predictions = open_prediction_log(self.settings.predictions_url, artifacts=self.artifacts)
        return self._predictions

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, path: str | Path = ".", *, store_url: str | None = None, artifacts_url: str | None = None,
        executor: str | None = None, predictions_url: str | None = None, clock: Clock | None = None,
    ) -> Workspace:
        """Open the project at ``path`` (a folder holding tidal.yaml, or the file itself)."""
        p = Path(path)
        spec_path = p if p.suffix in (".yaml", ".yml") else p / SPEC_FILE
        spec = load_spec(spec_path)
        settings = Settings.resolve(spec_path.parent, store_url=store_url, artifacts_url=artifacts_url,
                                    executor=executor, predictions_url=predictions_url,
                                    spec_storage=spec.storage.model_dump())
        return cls(spec, settings, clock=clock)

    @staticmethod
    def init(
        path: str | Path = ".", *, example: str | None = None, name: str | None = None,
        source: str | None = None, target: str | None = None, force: bool = False,
    ) -> Path:
        """Create a project in ``path``: a copy of a bundled example, or a commented tidal.yaml.

        A local ``source`` is a path from the current folder (as every path given to a command is); it is
        written into tidal.yaml relative to the project when it lies inside it, absolute otherwise, and a
        file that does not exist is refused (a glob is placed the same way, unchecked). URLs are written as
        given.
        """
        root = Path(path)
        spec_path = root / SPEC_FILE
        if spec_path.exists() and not force:
            raise SpecError(f"{spec_path} already exists", hint="use --force to overwrite it")
        if source is not None and example is None:
            _source_for(root, source)  # refused before anything is created
        if example is not None and example not in EXAMPLES:
            from tidal.core.errors import PluginNotFound

            raise PluginNotFound("example", example, EXAMPLES)
        root.mkdir(parents=True, exist_ok=True)
        if example is not None:
            src = examples_dir() / example
            from tidal.data.images.examples import WRITERS

            if example in WRITERS:  # an image example: its pictures are written from the package that ships them
                WRITERS[example](root)
            for item in src.rglob("*"):
                if item.is_file() and "__pycache__" not in item.parts:
                    dest = root / item.relative_to(src)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(item, dest)
            return spec_path
        project = name or _project_name(root.resolve().name)
        written = "data/train.csv" if source is None else _source_for(root, source)
        spec_path.write_text(default_spec_yaml(project, written, target or "target"))
        return spec_path

    def close(self) -> None:
        if self._predictions is not None:
            self._predictions.close()
        self.executor.close()  # a local Ray it started stops; a cluster it joined keeps running
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, *, listener: StepListener | None = None, use_cache: bool = True,
            trigger: str = "manual") -> RunResult:
        """Run the pipeline once; steps whose code, inputs and environment are unchanged are reused. Earlier
        runs whose process is gone are marked abandoned first."""
        mark_abandoned(self.store, self.spec.name, self.clock)
        return TrainingPipeline(self.context(), listener=listener, trigger=trigger, use_cache=use_cache).run()

    @contextmanager
    def start_run(self, *, trigger: str = "sdk", info: dict[str, Any] | None = None) -> Iterator[Tracker]:
        """A run for tracking by hand: log params, metrics and artifacts to the returned tracker.

        The run is marked succeeded when the block ends, failed if it raises. Every ``log_*`` call is
        one durable transaction; use ``with tracker.batch():`` to write many values at once.
        """
        run = Run(id=uuid.uuid4().hex, project=self.spec.name, status=RunStatus.RUNNING,
                  started_at=self.clock.now(), spec_digest=self.spec.digest, trigger=trigger,
                  info=dict(info or {}))
        self.store.create_run(run)
        tracker = Tracker(self.store, run.id, clock=self.clock, artifacts=self.artifacts)
        try:
            yield tracker
        except BaseException as exc:
            tracker.flush()
            self.store.finish_run(run.id, RunStatus.FAILED, self.clock.now(), error=str(exc))
            raise
        tracker.flush()
        self.store.finish_run(run.id, RunStatus.SUCCEEDED, self.clock.now())

    def promote(self, name: str, version: int, *, alias: str = CHAMPION, reason: str | None = None,
                actor: str | None = None) -> int | None:
        """Point ``alias`` (champion by default) at ``version``; returns the version it pointed at. ``actor``
        (who did it: an API token, else this machine's user) is written into the ``alias.moved`` event."""
        if not self.registry.list(name):
            raise ModelNotFound(f"no model named {name!r}", hint="run `tidal models ls` to see the models")
        # a challenger serves only under a canary or shadow strategy (and only for this project's model)
        serves = alias == CHAMPION or (alias == CHALLENGER and name == self.spec.name
                                       and self.spec.deploy.strategy.kind != "direct")
        return self.registry.set_alias(name, alias, version, reason=reason or "promoted by hand",
                                       trigger="manual", serves=serves, data={"actor": actor or _local_actor()})

    def rollback(self, name: str, *, reason: str | None = None, trigger: str = "manual",
                 actor: str | None = None) -> int:
        """Move ``champion`` back one step in its history (the champion before the current one, and with
        repeated rollbacks the one before that, skipping versions that can no longer serve); returns the
        version it points at now. ModelNotFound when the current champion is the first."""
        current = self.store.get_alias(name, CHAMPION)
        return self.registry.rollback(name, trigger=trigger, reason=reason or (
            f"rolled back from {name}:{current.version}" if current else "rolled back"),
            data={"actor": actor or _local_actor()})

    # -- packaging (tidal export, tidal serve --bundle) --------------------------------------------
    def export(self, ref: str, dest: str | Path, *, format: str = "native",
               tolerance: float | None = None) -> builtins.list[str]:
        """Write ``ref`` (``NAME``, ``NAME:VERSION``, ``NAME@ALIAS``; ``NAME`` alone is its champion, else
        its latest version) as a bundle in ``dest`` (docs/deploy.md, "Package for deployment"); returns the
        files written. Refused, with nothing written: a ``dest`` that exists and is not an empty folder, an
        unknown model, version or alias, and a version that never passed its gate (prototype or rejected:
        it could not serve in its workspace either). ``format="onnx"``: the bundle holds the version's ONNX form,
        checked on its holdout within ``tolerance`` (:func:`tidal.registry.onnx_form.onnx_bundle`)."""
        from tidal.registry import SERVABLE
        from tidal.registry.bundle import describe, refuse_target, write_bundle
        from tidal.train.flavors import get_flavor

        target = Path(dest)
        refuse_target(target)
        if format not in ("native", "onnx"):
            raise TidalError(f"unknown export format {format!r}", hint="use --format native or --format onnx")
        name, at, alias = ref.partition("@")
        name, _, version = name.partition(":")
        if at and (version or not alias):
            raise TidalError(f"cannot read model reference {ref!r}", hint="write NAME, NAME:VERSION or NAME@ALIAS")
        mv = self.registry.resolve(name, alias or version or None)
        if mv.state not in SERVABLE:
            raise TidalError(f"{mv.name}:{mv.version} is {mv.state.value}: only a version that passed its gate "
                             "can be exported" + (f" (rejected because: {'; '.join(mv.reasons)})" if mv.reasons
                                                  else ""), hint="export a validated version, e.g. NAME@champion")
        flavor = get_flavor(str(mv.info.get("flavor", "sklearn")))
        data = self.artifacts.get(mv.artifact_digest)  # checked against its digest by the store
        deploy = self.spec.deploy.model_dump(mode="json")
        deploy["strategy"] = {"kind": "direct"}  # a bundle holds one version: there is no challenger to try
        serve = {"target": self.spec.data.target, "estimator": self.spec.model.estimator, "deploy": deploy}
        model, modules = describe(mv, flavor=flavor.name, serve=serve), flavor.modules
        if format == "onnx":
            from tidal.registry.onnx_form import onnx_bundle

            model, data, modules = onnx_bundle(self.registry, mv, model, tolerance)
        return write_bundle(target, model, data, modules)

    @staticmethod
    def open_bundle(bundle: str | Path, *, log_dir: str | Path | None = None,
                    log_url: str | None = None) -> Path:
        """Make the private workspace that serves ``bundle`` (``tidal serve --bundle``) and return its root:
        see :func:`tidal.workspace.bundles.open_bundle`."""
        from tidal.workspace.bundles import open_bundle

        return open_bundle(bundle, log_dir=log_dir, log_url=log_url)

    # -- predictions and labels (the SDK face of /predict and /feedback) ----------------------------
    def predict(self, rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> Answer:
        """Predict ``rows`` (a DataFrame, or a list of ``{column: value}`` dicts of JSON values) with the
        champion, as ``POST /predict`` does: the same checks against its signature, the same answers, and
        each prediction logged with an id that :meth:`feedback` (or ``/feedback``) labels later, so the
        loop monitors and retrains on them. Raises ApiError naming the first row and column refused.
        Unlike the server, no ``deploy.max_rows`` limit applies: that limit protects a shared server from
        one client, and here the caller's own process does the work."""
        return self._local_predictor().predict(rows)

    def feedback(self, prediction_id: str | Sequence[Mapping[str, Any]], label: Any = None) -> int:
        """Store the true label of a prediction, as ``POST /feedback`` does: ``ws.feedback(id, label)``, or
        many at once as ``ws.feedback([{"prediction_id": ..., "label": ...}, ...])`` (all or nothing).
        Returns how many labels were stored. A label must be one of the champion's classes (a number for a
        regressor); an unknown id, or a second label while ``deploy.feedback`` is ``reject``, raises
        FeedbackRejected."""
        if isinstance(prediction_id, str):
            return self._local_predictor().feedback({"prediction_id": prediction_id, "label": label})
        if label is not None:
            raise TypeError("feedback(items) takes a list of {prediction_id, label}; pass no separate label")
        return self._local_predictor().feedback(prediction_id)

    def _local_predictor(self) -> LocalPredictor:
        if self._local is None:
            self._local = LocalPredictor(self.registry, self.predictions, self.clock, name=self.spec.name,
                                         overwrite_feedback=self.spec.deploy.feedback == "overwrite",
                                         runtime=self.spec.deploy.runtime, tolerance=self.spec.deploy.onnx_tolerance,
                                         images=self.artifacts)
        return self._local

    def monitor(
        self, *, window: int | None = None, since: datetime | None = None, model: str | None = None,
        html: str | Path | None = None, all_versions: bool = False,
    ) -> Report:
        """Compare the champion's reference profile and validation metrics with its recent predictions.

        The window is the newest ``window`` predictions (``monitor.window`` by default), or those since
        ``since``, of the serving version (of every version with ``all_versions``). The report is stored;
        an alert (dataset drift, performance below its floor) is recorded as an event. A window with no
        predictions has nothing to judge: the report returned has ``window["rows"] == 0`` and is neither
        stored nor written as HTML.
        """
        from tidal.loop.monitoring import monitor_once
        from tidal.monitor import render_html

        mv = self.models.get(model or self.spec.name)
        report = monitor_once(self.context(), mv, window=window, since=since, all_versions=all_versions)
        if html is not None and report.window.get("rows"):
            recent = list(reversed(self.store.list_reports(mv.name, limit=20)))
            render_html(recent, mv, Path(html))
        return report

    def context(self) -> LoopContext:
        """The spec and ports of this workspace, as the loop (controller, backtest) uses them."""
        return LoopContext(spec=self.spec, root=self.settings.root, store=self.store, artifacts=self.artifacts,
                           predictions=self.predictions, registry=self.registry, executor=self.executor,
                           clock=self.clock, heartbeat_s=RUN_HEARTBEAT_S, studies=self._study_storage,
                           embeddings=self._embeddings)

    def _study_storage(self) -> Any:
        """Optuna's storage for this workspace's searches, beside its metadata store (tidal.storage.study)."""
        from tidal.storage.study import open_study_storage

        return open_study_storage(self.settings.store_url)

    def controller(self, *, owner: str | None = None, lease_seconds: float = LEASE_S,
                   take_over: bool = False) -> Controller:
        """The closed loop's controller for this workspace (``tidal loop``). ``take_over``: take the
        controller lease even from a controller that holds it (``tidal loop --take-over``, for an operator
        who knows that controller is dead; recorded as an event)."""
        return Controller(self.context(), owner=owner, lease_seconds=lease_seconds, take_over=take_over)

    def loop_once(self, *, take_over: bool = False) -> TickReport:
        """One tick of the controller: observe, decide, act, record (``tidal loop --once``). A tick that
        another controller's lease kept from acting says so in ``blocked_by`` and ``note``."""
        controller = self.controller(take_over=take_over)
        try:
            return controller.tick()
        finally:
            controller.release()

    def backtest(self, *, progress: Progress | None = None) -> BacktestResult:
        """Replay the project's time-ordered data through the real loop with a simulated clock.

        Runs in throw-away stores (nothing is added to this workspace but one ``backtest.done`` event),
        so it can be run any time without disturbing what serves.
        """
        import tempfile

        from tidal.core.clock import SimulatedClock
        from tidal.data.steps import read_table
        from tidal.storage import open_prediction_log

        data = read_table(self.spec.data, base_dir=self.settings.root)
        with tempfile.TemporaryDirectory(prefix="tidal-backtest-") as tmp:
            clock = SimulatedClock()
            store = open_metadata_store("memory://")
            artifacts = open_artifact_store(str(Path(tmp) / "artifacts"))
            preds = open_prediction_log("memory://", artifacts=artifacts)
            ctx = LoopContext(spec=self.spec, root=self.settings.root, store=store, artifacts=artifacts,
                              predictions=preds, registry=Registry(store, artifacts, clock), executor=self.executor,
                              clock=clock)
            result = run_backtest(ctx, data, progress=progress)
        summary = result.to_dict()
        self.store.append_event(Event(
            kind="backtest.done", subject=f"project:{self.spec.name}", time=self.clock.now(),
            message=f"backtest over {result.rows} rows: loop {result.loop['score']:.4f} "
                    f"({describe(result.loop)}), static {result.static['score']:.4f}, periodic "
                    f"{result.periodic['score']:.4f}, last_label {result.last_label['score']:.4f}"
                    + (f", online {result.online['score']:.4f}" if result.online else "") + f" ({result.metric})"
                    + ("" if (failed := failure_line(result.loop)) is None else f"; {failed}"),
            data=summary))
        return result

    def reports(self, *, model: str | None = None, limit: int = 50) -> list[Report]:
        """Stored monitoring reports, newest first."""
        return self.store.list_reports(model or self.spec.name, limit=limit)

    def report(self, report_id: str) -> Report:
        """One stored report by id or unique prefix."""
        try:
            return self.store.get_report(report_id)
        except ReportNotFound:
            raise ReportNotFound(f"no report with id {report_id!r}",
                                 hint="run `tidal reports ls` to see the reports") from None

    def events(self, *, limit: int = 100, subject: str | None = None, kind: str | None = None) -> list[Event]:
        """The recorded decisions, oldest first among the newest ``limit``."""
        return self.store.list_events(subject=subject, kind=kind, limit=limit)

    def test_alerts(self) -> list[Event]:
        """Send a test alert to each ``monitor.alerts`` webhook (``tidal alerts test``); each one's
        ``alert.sent`` or ``alert.failed`` event. Refused when the spec has no webhook."""
        from tidal.loop.alerts import Alerts

        if not self.spec.monitor.alerts:
            raise TidalError("this project has no alert webhooks to test",
                             hint="add monitor.alerts to tidal.yaml, e.g. alerts: [{webhook: ${SLACK_WEBHOOK}}]")
        return Alerts(self.context(), record=self.store.append_event).test()

    def archive_predictions(self, before: datetime | None = None) -> ArchiveOutcome:
        """Move this project's predictions made before ``before`` (default: ``monitor.retention`` ago) out of
        the prediction log into Parquet files in the artifact store (``tidal predictions archive``; see
        :meth:`PredictionLog.archive`), recorded as a ``predictions.archived`` event when any moved."""
        from tidal.loop.retention import archive_before

        now = self.clock.now()
        if before is None:
            period = self.spec.monitor.retention_period
            if period is None:
                raise SpecError("monitor.retention is not set, so there is no default cutoff to archive before",
                                hint="pass --before DATE or --older-than 90d, or set monitor.retention in tidal.yaml")
            before = now - period
        return archive_before(self.context(), before, now)

    def prediction_days(self) -> list[LogDay]:
        """Per UTC day: this project's predictions and labels in the log and in the archive (``tidal predictions
        ls``)."""
        return self.predictions.days(model=self.spec.name)

    def check_predictions(self, *, quarantine: bool = False) -> LogCheck:
        """Read every stored prediction back (``tidal predictions check``) and list the batches that cannot
        be read; with ``quarantine``, move them aside (kept whole, see :meth:`PredictionLog.check`) and
        record a ``predictions.quarantined`` event naming them."""
        found = self.predictions.check(quarantine=quarantine)
        if found.quarantined:
            refs = [b.ref for b in found.unreadable]
            count = sum(b.predictions for b in found.unreadable)
            self.store.append_event(Event(
                kind="predictions.quarantined", subject=f"project:{self.spec.name}", time=self.clock.now(),
                message=f"{found.quarantined} unreadable prediction batch{'es' if found.quarantined > 1 else ''} "
                        f"({count} predictions) moved to quarantine: {', '.join(refs[:10])}"
                        + (f" and {len(refs) - 10} more" if len(refs) > 10 else ""),
                data={"refs": refs, "predictions": count,
                      "reasons": {b.ref: b.reason for b in found.unreadable}}))
        return found


__all__ = ["EXAMPLES", "SPEC_FILE", "LoopControl", "Models", "RunDetail", "Runs", "Snapshots", "Tokens",
           "Workspace", "examples_dir"]
