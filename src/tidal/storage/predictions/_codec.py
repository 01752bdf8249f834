"""Predictions and feedback ↔ stored rows, shared by every prediction log adapter.

Like :mod:`tidal.storage._codec` for the metadata store, both the SQL and the in-memory prediction logs
keep *encoded rows* (column name → value: JSON fields as text, datetimes as aware UTC) and apply the
same rules, so they behave alike: what a value becomes when stored, when a repeated ``append`` is
harmless and when it is refused, and which feedback is rejected with which message.

JSON values are written with orjson, which is an order of magnitude faster than :mod:`json` on the
serving hot path and writes NaN and infinities as ``null`` (JSON has no NaN). The values orjson refuses
(integers beyond 64 bits, lone surrogates) fall back to :mod:`json`, with the same NaN rule.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from tidal.core.entities import Feedback, Prediction
from tidal.core.errors import FeedbackRejected, PredictionNotFound, StorageError
from tidal.data.codec import encode_value
from tidal.storage._codec import utc, utc_or_none

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
# orjson reads integers beyond 64 bits as floats; text with a run of 19 digits may hold one, and is
# read with json instead (a float's repr has at most 17 significant digits, so this is rare).
_LONG_DIGITS = re.compile(r"\d{19}")
#: The columns that make a prediction what it is; labels are not among them (feedback changes them).
IDENTITY = ("id", "time", "model", "version", "deployment", "served", "request_id", "inputs", "output",
            "proba")
#: Longest prediction id quoted back in a message (ids come from requests: keep messages small).
_SHOWN_ID = 80


def dumps_value(value: Any, what: str) -> str:
    """``value`` as JSON text, NaN and ±inf as ``null``; ``what`` names the field in the error."""
    try:
        return orjson.dumps(value, option=_OPTIONS).decode()
    except TypeError:
        pass
    try:
        return json.dumps(_finite(value), allow_nan=False, default=_plain)
    except (TypeError, ValueError) as exc:
        raise StorageError(
            f"{what} cannot be stored: {exc}",
            hint="log only JSON values (str, int, float, bool, None, lists, dicts with string keys)",
        ) from exc


def loads_value(text: str) -> Any:
    """The JSON value in ``text`` (integers of any size come back exact)."""
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # e.g. an escaped lone surrogate, which only json wrote and reads
    return json.loads(text)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (json would write ``NaN``)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """What json cannot write by itself: the table codec's plain value (:func:`tidal.data.codec.encode_value`:
    timestamps and dates as ISO text, NaT and pd.NA as null, NumPy scalars), or a NumPy array's list."""
    encoded = encode_value(value)
    if encoded is not value:
        return _finite(encoded)
    if hasattr(value, "tolist"):  # numpy arrays
        return _finite(value.tolist())
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def shown_id(prediction_id: str) -> str:
    """A prediction id as quoted in a message: repr, cut to a sane length."""
    text = repr(prediction_id)
    return text if len(text) <= _SHOWN_ID else text[: _SHOWN_ID - 4] + "...'"


# -- rows ---------------------------------------------------------------------------------------------


#: The stored columns of a prediction, in the order of :func:`prediction_values`.
COLUMNS = ("id", "time", "model", "version", "deployment", "served", "request_id", "inputs", "output", "proba",
           "label", "label_time")


def prediction_values(p: Prediction) -> tuple[Any, ...]:
    """The stored values of ``p``, in the order of :data:`COLUMNS` (the hot path of ``append``: no dict).

    A label given without ``label_time`` is taken to date from ``p.time``, so that "labelled" always
    means "has a label time"."""
    labelled = p.label is not None or p.label_time is not None
    return (
        p.id, utc(p.time), p.model, int(p.version), p.deployment, bool(p.served), p.request_id,
        dumps_value(p.inputs, "prediction.inputs"),
        dumps_value(p.output, "prediction.output"),
        None if p.proba is None else dumps_value(p.proba, "prediction.proba"),
        dumps_value(p.label, "prediction.label") if labelled else None,
        (utc_or_none(p.label_time) or utc(p.time)) if labelled else None,
    )


def encode_prediction(p: Prediction) -> dict[str, Any]:
    """The stored row of ``p``: column name → value (see :func:`prediction_values`)."""
    return dict(zip(COLUMNS, prediction_values(p), strict=True))


def decode_prediction(r: Mapping[Any, Any]) -> Prediction:
    label, proba = r["label"], r["proba"]
    return Prediction(
        id=r["id"], time=r["time"], model=r["model"], version=r["version"],
        inputs=loads_value(r["inputs"]), output=loads_value(r["output"]),
        proba=None if proba is None else loads_value(proba), deployment=r["deployment"],
        served=bool(r["served"]), request_id=r["request_id"],
        label=None if label is None else loads_value(label), label_time=r["label_time"],
    )


def encode_feedback(fb: Feedback) -> dict[str, Any]:
    """The label columns that ``fb`` writes, keyed for an UPDATE by ``pid``."""
    return {"pid": fb.prediction_id, "label": dumps_value(fb.label, "feedback.label"),
            "label_time": utc(fb.time)}


def same_prediction(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two encoded rows are the same prediction (labels aside)."""
    return all(a[c] == b[c] for c in IDENTITY)


def new_rows(rows: Sequence[dict[str, Any]], stored: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows of an ``append`` batch still to insert, given the ``stored`` rows that share their ids.

    A row identical to a stored one (or to an earlier row of the batch) is dropped, so retrying an
    append whose outcome is unknown stores nothing twice; a *different* prediction under a known id
    raises StorageError, and the whole batch is refused.
    """
    fresh: dict[str, dict[str, Any]] = {}
    for row in rows:
        pid = row["id"]
        seen = stored.get(pid) or fresh.get(pid)
        if seen is None:
            fresh[pid] = row
        elif not same_prediction(seen, row):
            raise conflicting_prediction(pid)
    return list(fresh.values())


def check_feedback(feedback: Sequence[Feedback], labelled: Mapping[str, bool], *, overwrite: bool) -> None:
    """Raise FeedbackRejected for the first item of ``feedback`` that cannot be stored.

    ``labelled`` maps each known prediction id of the batch to whether it has a label already.
    """
    seen: set[str] = set()
    for index, fb in enumerate(feedback):
        pid = fb.prediction_id
        if pid not in labelled:
            raise unknown_prediction(pid, index)
        if pid in seen:
            raise repeated_feedback(pid, index)
        if labelled[pid] and not overwrite:
            raise duplicate_feedback(pid, index)
        seen.add(pid)


# -- errors with one wording in every adapter (never quoting a label: it is the user's data) ----------


def no_prediction(prediction_id: str) -> PredictionNotFound:
    return PredictionNotFound(f"no prediction {shown_id(prediction_id)}")


def conflicting_prediction(prediction_id: str) -> StorageError:
    return StorageError(
        f"a different prediction with id {shown_id(prediction_id)} is already logged; nothing of this "
        "batch was stored",
        hint="give every prediction a new id (appending the very same prediction again is harmless)",
    )


def unknown_prediction(prediction_id: str, index: int) -> FeedbackRejected:
    return FeedbackRejected(
        f"feedback item {index}: no prediction with id {shown_id(prediction_id)}; nothing of this batch "
        "was stored",
        reason="unknown", prediction_id=prediction_id, index=index,
        hint="send labels only for the prediction_ids that /predict returned",
    )


def duplicate_feedback(prediction_id: str, index: int) -> FeedbackRejected:
    return FeedbackRejected(
        f"feedback item {index}: prediction {shown_id(prediction_id)} already has a label; nothing of this "
        "batch was stored",
        reason="duplicate", prediction_id=prediction_id, index=index,
        hint="send each label once, or ask explicitly to overwrite the stored one",
    )


def repeated_feedback(prediction_id: str, index: int) -> FeedbackRejected:
    return FeedbackRejected(
        f"feedback item {index}: prediction {shown_id(prediction_id)} appears more than once in this "
        "batch; nothing of this batch was stored",
        reason="duplicate", prediction_id=prediction_id, index=index,
        hint="send one label per prediction id",
    )
