"""What the endpoints do, free of any web framework: bytes in, JSON bytes out, or an ApiError.

``/predict``: parse and check the rows against the serving version's signature, predict, build one
:class:`~tidal.core.entities.Prediction` per row, and wait until the prediction log has committed them
(:class:`~tidal.serve.logwriter.LogWriter`); only then is the answer returned. A model that raises is a
500 with an error id (logged with the stack trace); a log that cannot store is a 503 and the client is
told the answer was not given, so nothing answered is ever missing from the log.

``/feedback``: labels for earlier predictions, all or nothing. An unknown id is a 404, a second label a
409, unless ``deploy.feedback`` is ``overwrite`` (then the last label wins).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from tidal.core.entities import Feedback, Prediction
from tidal.core.errors import FeedbackRejected, StorageError
from tidal.core.ports import Clock, PredictionLog
from tidal.serve.errors import ApiError, internal_error
from tidal.serve.inputs import feedback_items, parse_json
from tidal.serve.logwriter import LogWriter
from tidal.serve.metrics import ServerMetrics
from tidal.serve.predictor import to_json
from tidal.serve.state import ServingState, Slot
from tidal.serve.threads import cap_threads

logger = logging.getLogger("tidal.serve")

#: Requests with more rows than this predict in a thread, so that the event loop keeps answering small
#: requests meanwhile (scikit-learn's tree loops release the GIL).
INLINE_MAX_ROWS = 64


_VARIANT = "89ab"


def new_ids(n: int) -> list[str]:
    """``n`` new prediction ids: time-ordered UUIDs (version 7, RFC 9562) as 32 hex digits.

    48 bits of Unix milliseconds, then the row's position in the request (12 bits), then 62 random bits.
    Ids made close in time sort together, so the log's primary-key index grows at its end instead of
    touching a random page per row: measured with the SQLite log at 150,000 rows, appending 1,000
    predictions took 45 ms with random (version 4) ids and 28.5 ms with these.
    """
    stamp = f"{time.time_ns() // 1_000_000:012x}"
    rand = os.urandom(8 * n).hex()
    return [f"{stamp}7{i & 0xFFF:03x}{_VARIANT[int(rand[16 * i], 16) & 3]}{rand[16 * i + 1:16 * i + 16]}"
            for i in range(n)]


class Service:
    """The server's behaviour over a serving slot, a prediction log and the deploy settings."""

    def __init__(self, *, slot: Slot, log: PredictionLog, clock: Clock, metrics: ServerMetrics,
                 max_rows: int, overwrite_feedback: bool) -> None:
        self.slot = slot
        self.log = log
        self.clock = clock
        self.metrics = metrics
        self.max_rows = max_rows
        self.overwrite_feedback = overwrite_feedback
        # One thread writes the log (the LogWriter keeps one flush in flight per process); two run large
        # predictions, each capped to one OpenMP thread.
        self._log_pool = ThreadPoolExecutor(1, thread_name_prefix="tidal-log")
        self._model_pool = ThreadPoolExecutor(2, thread_name_prefix="tidal-model", initializer=cap_threads)
        self.writer = LogWriter(log, self._log_pool)

    def close(self) -> None:
        self._model_pool.shutdown(wait=False, cancel_futures=True)
        self._log_pool.shutdown(wait=True)

    def serving(self) -> ServingState:
        state = self.slot.current
        if state is None:
            raise ApiError(503, self.slot.status)
        return state

    # -- /predict ---------------------------------------------------------------------------------------
    async def predict(self, body: bytes) -> bytes:
        state = self.serving()  # read once: this request uses this version to the end, swap or not
        doc = parse_json(body)
        rows = state.schema.instances(doc, max_rows=self.max_rows)
        try:
            if len(rows) <= INLINE_MAX_ROWS:
                out = state.predictor.arrays(rows)
            else:
                loop = asyncio.get_running_loop()
                out = await loop.run_in_executor(self._model_pool, state.predictor.arrays, rows)
            predictions, probabilities = to_json(out)
            if len(predictions) != len(rows):
                raise RuntimeError(f"the model returned {len(predictions)} predictions for {len(rows)} rows")
        except Exception as exc:
            raise internal_error(logger, f"/predict ({state.label})", exc) from None
        ids = new_ids(len(rows) + 1)
        request_id = ids.pop()  # groups the rows of one request in the log
        now = self.clock.now()
        name, version = state.mv.name, state.mv.version
        if probabilities is None:
            records = [Prediction(id=i, time=now, model=name, version=version, inputs=row, output=out_,
                                  request_id=request_id) for i, row, out_ in zip(ids, rows, predictions, strict=True)]
        else:
            records = [Prediction(id=i, time=now, model=name, version=version, inputs=row, output=out_, proba=p,
                                  request_id=request_id)
                       for i, row, out_, p in zip(ids, rows, predictions, probabilities, strict=True)]
        try:
            await self.writer.append(records)
        except Exception as exc:
            raise internal_error(logger, "/predict (prediction log)", exc, status=503,
                                 message="the predictions could not be stored, so they are not answered; "
                                         "try again") from None
        self.metrics.rows_of(name).inc(len(rows))
        answer: dict[str, Any] = {"predictions": predictions}
        if probabilities is not None:
            answer["probabilities"] = probabilities
        answer["prediction_ids"] = ids
        answer["model"] = state.model_ref
        return orjson.dumps(answer)

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
        return self.log.add_feedback(labels, overwrite=self.overwrite_feedback)

    # -- /model, /readyz ----------------------------------------------------------------------------------
    def model_info(self) -> dict[str, Any]:
        state = self.serving()
        mv = state.mv
        return {
            "name": mv.name, "version": mv.version, "state": mv.state.value, "task": mv.task,
            "created_at": mv.created_at.isoformat(), "run_id": mv.run_id, "format": mv.format,
            "artifact_digest": mv.artifact_digest,
            "signature": mv.signature, "inputs": state.schema.describe(), "metrics": mv.metrics,
            "lineage": mv.lineage,
            "serving": {**state.report, "loaded_at": state.loaded_at.isoformat(), "pid": os.getpid(),
                        "deployment": "direct"},
        }


__all__ = ["INLINE_MAX_ROWS", "Service", "new_ids"]
