"""The LogWriter: concurrent requests share appends, and each one hears how its own append went."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from tidal.core.entities import Prediction
from tidal.core.errors import StorageError
from tidal.serve.logwriter import LogWriter


def prediction(i: int) -> Prediction:
    return Prediction(id=f"p{i}", time=datetime.now(UTC), model="m", version=1, inputs={"x": i}, output=0)


class SlowLog:
    """Takes 5 ms per append; fails the appends that hold a prediction whose id is in ``poison``."""

    def __init__(self, poison: frozenset[str] = frozenset()) -> None:
        self.calls: list[list[str]] = []
        self.poison = poison
        self.lock = threading.Lock()

    def append(self, predictions: Sequence[Prediction]) -> None:
        time.sleep(0.005)
        ids = [p.id for p in predictions]
        with self.lock:
            self.calls.append(ids)
        if self.poison & set(ids):
            raise StorageError("disk full")


def test_concurrent_appends_share_flushes_and_all_land() -> None:
    log = SlowLog()

    async def scenario() -> None:
        writer = LogWriter(log)  # type: ignore[arg-type]
        await asyncio.gather(*(writer.append([prediction(i)]) for i in range(200)))
        assert writer.appended == 200 and writer.flushes == len(log.calls)

    asyncio.run(scenario())
    stored = [pid for call in log.calls for pid in call]
    assert sorted(stored) == sorted(f"p{i}" for i in range(200))
    assert len(log.calls) < 20, f"{len(log.calls)} flushes for 200 concurrent appends"


def test_a_failed_flush_fails_its_callers_only() -> None:
    log = SlowLog(poison=frozenset({"p0"}))

    async def scenario() -> list[BaseException | None]:
        writer = LogWriter(log)  # type: ignore[arg-type]
        first = asyncio.ensure_future(writer.append([prediction(0)]))
        await asyncio.sleep(0)  # p0's flush starts alone; the rest queue behind it
        rest = [asyncio.ensure_future(writer.append([prediction(i)])) for i in range(1, 5)]
        results = await asyncio.gather(first, *rest, return_exceptions=True)
        return list(results)  # type: ignore[arg-type]

    results = asyncio.run(scenario())
    assert isinstance(results[0], StorageError)
    assert results[1:] == [None] * 4


class ThreadLog(SlowLog):
    """Records which thread each append ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def append(self, predictions: Sequence[Prediction]) -> None:
        self.threads.append(threading.get_ident())
        super().append(predictions)


def test_small_flushes_run_inline_and_large_ones_in_the_pool() -> None:
    from concurrent.futures import ThreadPoolExecutor

    log = ThreadLog()
    pool = ThreadPoolExecutor(1)

    async def scenario() -> int:
        writer = LogWriter(log, pool, inline_rows=4)  # type: ignore[arg-type]
        await writer.append([prediction(0)])  # alone: inline, on the loop's thread
        await writer.append([prediction(i) for i in range(1, 10)])  # 9 rows: in the pool
        # concurrent small appends still share flushes, inline or not, and all land
        await asyncio.gather(*(writer.append([prediction(i)]) for i in range(10, 40)))
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    pool.shutdown()
    assert log.threads[0] == loop_thread
    assert log.threads[1] != loop_thread
    assert sorted(pid for call in log.calls for pid in call) == sorted(f"p{i}" for i in range(40))
    assert len(log.calls) < 2 + 30


def test_an_inline_flush_that_fails_fails_its_callers() -> None:
    log = SlowLog(poison=frozenset({"p0"}))

    async def scenario() -> list[BaseException | None]:
        writer = LogWriter(log, inline_rows=64)  # type: ignore[arg-type]
        return list(await asyncio.gather(writer.append([prediction(0)]), return_exceptions=True))

    assert isinstance(asyncio.run(scenario())[0], StorageError)


def test_at_once_commits_in_the_call_when_nothing_else_is_pending() -> None:
    from concurrent.futures import ThreadPoolExecutor

    log = ThreadLog()
    pool = ThreadPoolExecutor(1)

    async def scenario() -> None:
        writer = LogWriter(log, pool, inline_rows=4)  # type: ignore[arg-type]
        coro = writer.append([prediction(0)], at_once=True)
        task = asyncio.ensure_future(coro)
        await asyncio.sleep(0)  # one turn: the task ran to its end, with no flush task of the writer's own
        assert task.done() and log.calls == [["p0"]] and writer._task is None
        # rows over the inline limit still go to the pool, at_once or not
        await writer.append([prediction(i) for i in range(1, 10)], at_once=True)
        assert log.threads[1] != threading.get_ident()
        # while a flush is under way (9 rows, in the pool: 5 ms), at_once joins the queue: had it written at
        # once, its call would be stored before the pool's
        slow = asyncio.ensure_future(writer.append([prediction(i) for i in range(10, 19)]))
        await asyncio.sleep(0)
        assert writer._flushing
        await asyncio.gather(slow, writer.append([prediction(19)], at_once=True))
        assert log.calls[-2:] == [[f"p{i}" for i in range(10, 19)], ["p19"]]
        assert writer.appended == 20 and writer.flushes == len(log.calls)

    asyncio.run(scenario())
    pool.shutdown()


def test_at_once_raises_what_the_log_raised() -> None:
    log = SlowLog(poison=frozenset({"p0"}))

    async def scenario() -> None:
        writer = LogWriter(log, inline_rows=64)  # type: ignore[arg-type]
        try:
            await writer.append([prediction(0)], at_once=True)
        except StorageError:
            pass
        else:
            raise AssertionError("the failed append was not reported")
        await writer.append([prediction(1)], at_once=True)  # the writer goes on
        assert writer.appended == 1 and writer.flushes == 2

    asyncio.run(scenario())
