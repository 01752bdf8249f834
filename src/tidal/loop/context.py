"""What the loop works with: the spec and the ports of one workspace, wired by the Workspace."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidal.core.ports import ArtifactStore, Clock, Executor, MetadataStore, PredictionLog
from tidal.monitor.embedding import EmbeddingCache
from tidal.registry import Registry
from tidal.spec import Spec


@dataclass
class LoopContext:
    """The spec, the stores and the clock of a workspace, as the loop's code needs them."""

    spec: Spec
    root: Path
    store: MetadataStore
    artifacts: ArtifactStore
    predictions: PredictionLog
    registry: Registry
    executor: Executor
    clock: Clock
    #: seconds between the heartbeats of the runs the loop starts (None: no heartbeat, as in a backtest)
    heartbeat_s: float | None = None
    #: opens the Optuna storage where ``model.search`` keeps its studies (None: Optuna's in-memory storage,
    #: so a search in throw-away stores, as in a backtest, does not resume)
    studies: Callable[[], Any] | None = None
    #: the embedding references of the versions this context monitored (one forward pass per version)
    embeddings: EmbeddingCache = field(default_factory=EmbeddingCache)
