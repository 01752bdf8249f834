"""Tracking: params, metrics (with step and time), tags and artifacts of a run.

Every call is one transaction, however many values it carries, and is durable when it returns. Inside
``with tracker.batch():`` values are buffered and written as one transaction when the block ends (or
every ``flush_every`` values), which is how many values are logged quickly without losing what was
logged before a crash.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from tidal.core.clock import SystemClock
from tidal.core.entities import Metric
from tidal.core.ports import ArtifactStore, Clock, MetadataStore

#: The run artifact that holds what the training library printed (``tidal runs show`` shows it).
LOG_ARTIFACT = "log.txt"


class Tracker:
    """Logs to one run of a :class:`MetadataStore`."""

    def __init__(
        self, store: MetadataStore, run_id: str, *, clock: Clock | None = None,
        artifacts: ArtifactStore | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.clock = clock or SystemClock()
        self.artifacts = artifacts
        self._buffer: list[Metric] | None = None
        self._params: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._flush_every = 1000

    # -- values ---------------------------------------------------------------------------------
    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        """One metric value at ``step``."""
        self._emit([Metric(key, float(value), int(step), self.clock.now())])

    def log_metrics(self, values: Mapping[str, float], step: int = 0) -> None:
        """Several metrics at one step, in one transaction."""
        now = self.clock.now()
        self._emit([Metric(k, float(v), int(step), now) for k, v in values.items()])

    def log_curve(self, key: str, values: list[float]) -> None:
        """A per-iteration curve: value i at step i, in one transaction."""
        now = self.clock.now()
        self._emit([Metric(key, float(v), i, now) for i, v in enumerate(values)])

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, values: Mapping[str, Any]) -> None:
        params = {k: _as_text(v) for k, v in values.items()}
        if self._buffer is not None:
            self._params.update(params)
        else:
            self.store.log_batch(self.run_id, params=params)

    def set_tags(self, values: Mapping[str, Any]) -> None:
        tags = {k: _as_text(v) for k, v in values.items()}
        if self._buffer is not None:
            self._tags.update(tags)
        else:
            self.store.log_batch(self.run_id, tags=tags)

    def log_artifact(self, name: str, data: bytes) -> str:
        """Store ``data`` content-addressed and link it to the run under ``name``; returns the digest."""
        if self.artifacts is None:
            raise RuntimeError("this tracker has no artifact store")
        digest = self.artifacts.put(data)
        self.store.add_run_artifact(self.run_id, name, digest)
        return digest

    # -- batching -------------------------------------------------------------------------------
    @contextmanager
    def batch(self, flush_every: int = 1000) -> Iterator[Tracker]:
        """Buffer everything logged inside the block; write it in transactions of ``flush_every``."""
        if self._buffer is not None:  # nested: the outer block flushes
            yield self
            return
        self._buffer, self._flush_every = [], max(1, flush_every)
        try:
            yield self
        finally:
            self.flush()
            self._buffer = None

    def flush(self) -> None:
        """Write what is buffered, as one transaction."""
        if self._buffer is None:
            return
        if self._buffer or self._params or self._tags:
            self.store.log_batch(self.run_id, metrics=self._buffer, params=self._params, tags=self._tags)
        self._buffer.clear()
        self._params, self._tags = {}, {}

    def _emit(self, metrics: list[Metric]) -> None:
        if self._buffer is None:
            self.store.log_batch(self.run_id, metrics=metrics)
            return
        self._buffer.extend(metrics)
        if len(self._buffer) >= self._flush_every:
            self.flush()


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value) if not isinstance(value, (int, float, bool)) else str(value)
