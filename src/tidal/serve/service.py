"""What the endpoints do, free of any web framework: bytes in, JSON bytes out, or an ApiError.

``/predict``: parse and check the rows against the serving version's signature, predict, build one
:class:`~tidal.core.entities.Prediction` per row, and wait until the prediction log has committed them
(:class:`~tidal.serve.logwriter.LogWriter`); only then is the answer returned. A model that raises is a
500 with an error id (logged with the stack trace); a log that cannot store is a 503 and the client is
told the answer was not given, so nothing answered is ever missing from the log.

In a canary trial, the requests the :class:`~tidal.serve.trials.CanaryRouter` picks are answered (all
their rows) by the challenger, logged with its version and deployment ``canary``; a challenger that
refuses the rows or raises is counted and logged, and the champion answers that request instead (as
``direct``), so a broken challenger never fails a request. In a shadow trial, the champion answers
every request as usual, and once its predictions are committed the request hands its body to the
:class:`~tidal.serve.trials.ShadowRunner` and returns without waiting for it. See docs/deploy.md.

``/feedback``: labels for earlier predictions, all or nothing. An unknown id is a 404, a second label a
409, unless ``deploy.feedback`` is ``overwrite`` (then the last label wins).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import orjson

from tidal.core.entities import Feedback
from tidal.core.errors import FeedbackRejected, StorageError
from tidal.core.ids import IdRange, new_ids, new_prefix
from tidal.core.ports import ArtifactStore, Clock, PredictionLog
from tidal.predict.errors import ApiError
from tidal.predict.history import LabelHistory
from tidal.predict.inputs import feedback_items, parse_json
from tidal.predict.records import (
    Answers,
    StoredImages,
    make_records,
    predict_rows,
    put_images,
    store_images,
    unstored_images,
)
from tidal.predict.state import ServingState, Slot, Trial
from tidal.serve.errors import internal_error
from tidal.serve.logwriter import LogWriter
from tidal.serve.metrics import ServerMetrics
from tidal.serve.threads import cap_threads
from tidal.serve.trials import CanaryRouter, ShadowRunner, Throttled

logger = logging.getLogger("tidal.serve")

#: Requests with more rows than this predict in a thread, so that the event loop keeps answering small
#: requests meanwhile (scikit-learn's tree loops release the GIL).
INLINE_MAX_ROWS = 64
#: Requests of at most this many images, on a local artifact store, look on the event loop for the images the
#: store holds already (a ``stat`` each) and hand only the others to a thread: an image sent before then costs
#: no thread hop (two thread wake-ups, several times the check; see :class:`~tidal.serve.logwriter.LogWriter`).
#: An image this process has seen stored costs not even the ``stat`` (:class:`~tidal.predict.records.StoredImages`;
#: measured in process, 1 image a request: 56 µs → ~10 µs for this step).
INLINE_IMAGE_CHECKS = 8


class Service:
    """The server's behaviour over a serving slot, a prediction log and the deploy settings."""

    def __init__(self, *, slot: Slot, log: PredictionLog, clock: Clock, metrics: ServerMetrics,
                 max_rows: int, overwrite_feedback: bool, strategy: str = "direct",
                 inline_log_rows: int = 0, images: ArtifactStore | None = None) -> None:
        self.slot = slot
        #: Where an image model's served images are kept, by digest, before the log row that names them
        #: (docs/images.md, "Serving"); None: only the log's digest and thumbnail are kept.
        self.images = images
        self._local_images = bool(getattr(images, "local", False))  # its exists() is a stat (see _store_images)
        #: the images this process has seen stored: a request that sends one again costs no look-up at all
        self._stored_images = StoredImages()
        #: ``deploy.strategy.kind``: what the server does with a challenger (see docs/deploy.md).
        self.strategy = strategy
        self.log = log
        self.clock = clock
        self.metrics = metrics
        self.max_rows = max_rows
        self.overwrite_feedback = overwrite_feedback
        # One thread writes the log (the LogWriter keeps one flush in flight per process); two run large
        # predictions, each capped to one OpenMP thread.
        self._log_pool = ThreadPoolExecutor(1, thread_name_prefix="tidal-log")
        self._model_pool = ThreadPoolExecutor(2, thread_name_prefix="tidal-model", initializer=cap_threads)
        self.writer = LogWriter(log, self._log_pool, inline_rows=inline_log_rows)
        self.router = CanaryRouter()
        self.shadow = ShadowRunner(log, metrics, max_rows=max_rows, inline_rows=INLINE_MAX_ROWS)
        self._canary_failed = Throttled()
        self.history = LabelHistory(log)

    def close(self) -> None:
        self._model_pool.shutdown(wait=False, cancel_futures=True)
        self.shadow.close()
        self._log_pool.shutdown(wait=True)

    def serving(self) -> ServingState:
        state = self.slot.current
        if state is None:
            raise ApiError(503, self.slot.status)
        return state

    # -- /predict ---------------------------------------------------------------------------------------
    async def predict(self, body: bytes, quiet: bool = False) -> bytes:
        """The answer to a /predict body. ``quiet``: no other request is in flight (the server's app tells),
        so the predictions may be committed at once (:meth:`LogWriter.append`'s ``at_once``)."""
        return orjson.dumps((await self.answer(parse_json(body), quiet))[1])

    async def answer(self, doc: Any, quiet: bool = False, *,
                     checked: ServingState | None = None) -> tuple[ServingState, dict[str, Any]]:
        """The version that answered a parsed /predict document (``{"instances": [...]}``) and its answer, as
        a dict: ``predictions``, ``probabilities`` (classifiers), ``prediction_ids`` and ``model``. Every
        route that predicts (/predict, /invocations, the Open Inference Protocol's infer) comes through here,
        so each is checked, routed (canary, shadow) and logged alike. ``checked``: the version whose row
        checks the caller has made already, in a form of its own (the infer route's tensors, see
        :mod:`tidal.serve.v2plan`); when it is still the champion, the rows are not checked again."""
        deployment = self.slot.deployment  # read once: this request uses these versions to the end, swap or not
        champion, trial = deployment.champion, deployment.trial
        if champion is None:
            raise ApiError(503, self.slot.status)
        filled = False
        for used in (champion, trial.state if trial is not None else None):
            if used is not None and self.history.needs(used, doc):  # label features, from the log's newest labels
                filled = True
                if self.history.fresh(used):  # in memory: no read, so no thread hop
                    self.history.fill(used, doc)
                else:  # a read of the log, off the event loop; not on the log's writer thread, whose flushes
                    # would wait behind it (and it behind them)
                    await asyncio.get_running_loop().run_in_executor(None, self.history.fill, used, doc)
        # Checked against the champion's signature whatever the route: bad input gets the champion's 4xx,
        # and takes no canary turn, so the canary's share is exact over the requests that are answered. Rows
        # the caller checked against this very champion, and that nothing was added to since, are taken as
        # they are.
        if checked is champion and not filled:
            rows = doc["instances"]
        else:
            rows = champion.schema.instances(doc, max_rows=self.max_rows)
        # An image model's images go to the artifact store (a file write each: off the event loop) while the
        # model predicts them: the log row that names them waits for both, the answer no longer waits for one
        # after the other. Stored for a request that then fails, an image is only kept once more than needed.
        stored = self._store_images(champion, rows)
        state, how, answers = champion, "direct", None
        if trial is not None and trial.kind == "canary" and self.router.take(trial):
            found = await self._canary(trial, doc)
            if found is not None:
                state, how, (rows, answers) = trial.state, "canary", found
        if answers is None:
            try:
                answers = await self._predict(champion, rows)
            except Exception as exc:
                raise internal_error(logger, f"/predict ({champion.label})", exc) from None
        ids = new_ids(len(rows))
        # groups the rows of one request in the log: the prefix their ids share
        request_id = ids.prefix if isinstance(ids, IdRange) else new_prefix()
        # The log stores these rows, as parsed, checked and predicted, encoded again: never the client's text,
        # which may say something else (a repeated "instances" key: a JSON reader keeps the last one).
        records = make_records(state, rows, answers, ids, request_id=request_id, now=self.clock.now(),
                               deployment=how)
        try:
            if stored is not None:
                await stored
            if state is not champion:  # the canary's rows, checked against its own signature
                await (self._store_images(state, rows) or asyncio.sleep(0))
            await self.writer.append(records, at_once=quiet)
        except Exception as exc:
            raise internal_error(logger, "/predict (prediction log)", exc, status=503,
                                 message="the predictions could not be stored, so they are not answered; "
                                         "try again") from None
        if trial is not None and trial.kind == "shadow":
            self.shadow.submit(trial, doc, records)  # returns at once: the answer does not wait for it
        self.metrics.rows_of(state.name).inc(len(rows))
        self.metrics.predicted(state.name, state.version, how, len(rows))
        predictions, probabilities = answers
        answer: dict[str, Any] = {"predictions": predictions}
        if probabilities is not None:
            answer["probabilities"] = probabilities
        answer["prediction_ids"] = ids.tolist() if isinstance(ids, IdRange) else ids
        answer["model"] = state.model_ref
        return state, answer

    def _store_images(self, state: ServingState, rows: list[dict[str, Any]]) -> asyncio.Future[int] | None:
        """The images of ``rows`` being put into the artifact store in a thread (None: nothing to store)."""
        if self.images is None or not state.schema.images:
            return None
        loop = asyncio.get_running_loop()
        known = self._stored_images
        if self._local_images and len(rows) * len(state.schema.images) <= INLINE_IMAGE_CHECKS:
            missing = unstored_images(self.images, state, rows, known=known)
            if not missing:  # all stored already: nothing to write, so no thread to wait for
                return None
            future = loop.run_in_executor(None, partial(put_images, self.images, missing, known=known))
        else:
            future = loop.run_in_executor(None, partial(store_images, self.images, state, rows, known=known))
        # a request that fails before awaiting it must not leave "exception never retrieved" in the log
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        return future

    async def _predict(self, state: ServingState, rows: list[dict[str, Any]]) -> Answers:
        if len(rows) <= INLINE_MAX_ROWS:
            return predict_rows(state, rows)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._model_pool, predict_rows, state, rows)

    async def _canary(self, trial: Trial, doc: Any) -> tuple[list[dict[str, Any]], Answers] | None:
        """The canary challenger's rows and answers, or None when it cannot answer (the champion will: a
        challenger that refuses rows the champion took, or raises, is counted and logged)."""
        state = trial.state
        try:
            rows = state.schema.instances(doc, max_rows=self.max_rows)  # its own signature may differ
            return rows, await self._predict(state, rows)
        except Exception as exc:
            self.metrics.challenger_errors.labels(state.name, "canary").inc()
            self._canary_failed("canary %s failed, the champion answered instead: %s: %s", state.label,
                                type(exc).__name__, exc, exc=None if isinstance(exc, ApiError) else exc)
            return None

    # -- /feedback --------------------------------------------------------------------------------------
    async def feedback(self, body: bytes) -> bytes:
        doc = parse_json(body)
        state = self.slot.current
        items = feedback_items(doc, max_items=self.max_rows, classes=state.classes if state else None,
                               task=state.mv.task if state else None)
        now = self.clock.now()
        labels = [Feedback(prediction_id=it.prediction_id, label=it.label, time=now) for it in items]
        loop = asyncio.get_running_loop()
        try:
            stored = await loop.run_in_executor(None, self._add_feedback, labels)
        except FeedbackRejected as exc:
            where = items[exc.index].where if 0 <= exc.index < len(items) else ""
            if exc.reason == "unknown":
                raise ApiError(404, f"{where}prediction_id: no prediction with this id") from None
            raise ApiError(409, f"{where}prediction_id: this prediction already has a label (deploy.feedback is "
                                "'reject'; set it to 'overwrite' to let a later label replace it)") from None
        except StorageError as exc:
            raise internal_error(logger, "/feedback (prediction log)", exc, status=503,
                                 message="the labels could not be stored; try again") from None
        return orjson.dumps({"stored": stored})

    def _add_feedback(self, labels: list[Feedback]) -> int:
        stored = self.log.add_feedback(labels, overwrite=self.overwrite_feedback)
        self.history.invalidate()  # the next request's label features see these labels
        return stored

    # -- /model, /readyz ----------------------------------------------------------------------------------
    def model_info(self) -> dict[str, Any]:
        deployment = self.slot.deployment  # read once: the champion and its challenger, as deployed together
        state = deployment.champion
        if state is None:
            raise ApiError(503, self.slot.status)
        mv = state.mv
        return {
            "name": mv.name, "version": mv.version, "state": mv.state.value, "task": mv.task,
            "created_at": mv.created_at.isoformat(), "run_id": mv.run_id, "format": mv.format,
            "artifact_digest": mv.artifact_digest,
            "signature": mv.signature.to_dict(), "inputs": state.schema.describe(mv.signature.derived),
            "metrics": mv.metrics,
            "lineage": _shown_lineage(mv.lineage.to_dict()),
            "serving": {**state.report, "loaded_at": state.loaded_at.isoformat(), "deployment": "direct"},
            "deployment": self.deployment_info(state, deployment.trial),
        }

    def deployment_info(self, champion: ServingState, trial: Trial | None) -> dict[str, Any]:
        """The strategy, the champion, and the challenger beside it (or why there is none), as this process
        serves them."""
        info: dict[str, Any] = {"strategy": self.strategy, "champion": champion.model_ref, "challenger": None,
                                "challenger_status": self.slot.trial_status}
        if trial is not None:
            mv = trial.state.mv
            challenger: dict[str, Any] = {
                **trial.state.model_ref, "state": mv.state.value, "mode": trial.kind,
                "loaded_at": trial.state.loaded_at.isoformat(), "path": trial.state.report.get("path"),
                "metrics": mv.metrics}
            # percent: the share of requests the challenger answers (a shadow predicts them all, answers none)
            challenger["percent"] = trial.percent if trial.kind == "canary" else 0.0
            if trial.kind == "canary":
                challenger["routed"] = self.router.stats(trial)
            else:
                challenger["shadow"] = {"pending_rows": self.shadow.pending, "logged_rows": self.shadow.logged}
            info["challenger"] = challenger
        return info


def _shown_lineage(lineage: dict[str, Any]) -> dict[str, Any]:
    """The lineage as ``/model`` shows it: where the training data was read stays in the registry (``tidal models
    show``), not in answers: an absolute path tells a client about the server's file system."""
    source = lineage.get("source")
    if not isinstance(source, dict) or "path" not in source:
        return lineage
    return {**lineage, "source": {k: v for k, v in source.items() if k != "path"}}


__all__ = ["INLINE_MAX_ROWS", "Service"]
