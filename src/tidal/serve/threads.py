"""One BLAS/OpenMP thread per server thread that runs a model.

scikit-learn's OpenMP loops (HistGradientBoosting's predict among them) start a team of threads sized to
the machine on every call; on a 2-core machine serving many small requests, those threads spin waiting
for work and fight the server (and anything else running) for the CPU. Measured on this 2-core machine,
one-row ``predict_proba`` of the Elec2 champion, 300 calls: default threads mean 18.6 ms, p99 459 ms;
capped to 1, mean 4.4 ms, p99 7.3 ms. A server gets its parallelism from concurrent requests and worker
processes, not from threads inside one prediction.

OpenMP's thread count is per calling thread, so :func:`cap_threads` runs in every thread that runs a
model: the event loop's, the reloader's, and the pool that runs large batches. The environment variables
also cover worker processes started later (they read them when the libraries load).
"""

from __future__ import annotations

import os
from typing import Any

ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def cap_env() -> None:
    """Set the thread-count variables to 1 where the user has not set them (for processes started later)."""
    for var in ENV_VARS:
        os.environ.setdefault(var, "1")


def cap_threads() -> list[dict[str, Any]]:
    """Limit every BLAS and OpenMP library to 1 thread, for the calling thread (OpenMP) or the process
    (BLAS); returns what was found before (library and thread count), for the log."""
    import sklearn  # noqa: F401  (loads the OpenMP runtime: threadpoolctl limits only what is loaded)
    from threadpoolctl import threadpool_info, threadpool_limits

    before: list[dict[str, Any]] = list(threadpool_info())
    threadpool_limits(limits=1)
    return before


__all__ = ["ENV_VARS", "cap_env", "cap_threads"]
