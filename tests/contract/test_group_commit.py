"""The group commit behind ``SqlPredictionLog.append``, with a write function the test controls."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from tidal.storage.testing import GroupCommit


class Gate:
    """A write function that records its batches and, while closed, holds the leader inside the write."""

    def __init__(self, fail: Callable[[Sequence[str]], Sequence[BaseException | None]] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.fail = fail

    def __call__(self, payloads: Sequence[str]) -> Sequence[BaseException | None]:
        self.batches.append(list(payloads))
        self.entered.set()
        assert self.opened.wait(30)
        if self.fail is not None:
            return self.fail(payloads)
        return [None] * len(payloads)


Outcomes = dict[str, BaseException | None]


def submit_all(committer: GroupCommit[str], payloads: list[str]) -> tuple[list[threading.Thread], Outcomes]:
    """Submit each payload from a thread of its own; the outcomes fill in as they return."""
    outcomes: Outcomes = {}

    def one(payload: str) -> None:
        try:
            committer.submit(payload)
            outcomes[payload] = None
        except BaseException as exc:
            outcomes[payload] = exc

    threads = [threading.Thread(target=one, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    return threads, outcomes


def wait_queued(committer: GroupCommit[str], calls: int) -> None:
    deadline = time.monotonic() + 30
    while committer.stats().calls < calls:
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_a_lone_caller_writes_its_own_batch() -> None:
    gate = Gate()
    gate.opened.set()
    committer = GroupCommit(gate)
    committer.submit("a")
    committer.submit("b")
    assert gate.batches == [["a"], ["b"]]
    stats = committer.stats()
    assert (stats.calls, stats.commits, stats.largest, stats.calls_per_commit) == (2, 2, 1, 1.0)


def test_callers_queued_behind_a_write_share_the_next_commit() -> None:
    gate = Gate()
    committer = GroupCommit(gate)
    first, outcomes = submit_all(committer, ["leader"])
    assert gate.entered.wait(30)
    rest, more = submit_all(committer, [f"f{i}" for i in range(5)])
    wait_queued(committer, 6)
    gate.opened.set()
    for t in first + rest:
        t.join(30)
    assert gate.batches[0] == ["leader"]
    assert sorted(gate.batches[1]) == [f"f{i}" for i in range(5)] and len(gate.batches) == 2
    assert set({**outcomes, **more}.values()) == {None}
    assert committer.stats().commits == 2 and committer.stats().largest == 5


def test_an_error_reaches_every_caller_of_the_failed_batch_only() -> None:
    boom = RuntimeError("disk full")

    def fail(payloads: Sequence[str]) -> Sequence[BaseException | None]:
        if "leader" in payloads:
            return [None]
        raise boom

    gate = Gate(fail)
    committer = GroupCommit(gate)
    first, outcomes = submit_all(committer, ["leader"])
    assert gate.entered.wait(30)
    rest, more = submit_all(committer, [f"f{i}" for i in range(4)])
    wait_queued(committer, 5)
    gate.opened.set()
    for t in first + rest:
        t.join(30)
    assert outcomes == {"leader": None}
    assert more == {f"f{i}": boom for i in range(4)}
    # The committer is not stuck: the next caller leads a batch of its own.
    gate.fail = None
    committer.submit("after")
    assert gate.batches[-1] == ["after"]


def test_each_caller_gets_its_own_outcome() -> None:
    def fail(payloads: Sequence[str]) -> Sequence[BaseException | None]:
        return [ValueError(p) if p.startswith("bad") else None for p in payloads]

    gate = Gate(fail)
    committer = GroupCommit(gate)
    first, outcomes = submit_all(committer, ["leader"])
    assert gate.entered.wait(30)
    rest, more = submit_all(committer, ["good1", "bad1", "good2"])
    wait_queued(committer, 4)
    gate.opened.set()
    for t in first + rest:
        t.join(30)
    assert outcomes["leader"] is None and more["good1"] is None and more["good2"] is None
    assert isinstance(more["bad1"], ValueError)
    with pytest.raises(ValueError, match="bad-alone"):
        committer.submit("bad-alone")


def test_batches_are_capped() -> None:
    gate = Gate()
    committer = GroupCommit(gate, max_batch=3)
    first, _ = submit_all(committer, ["leader"])
    assert gate.entered.wait(30)
    rest, _ = submit_all(committer, [f"f{i}" for i in range(7)])
    wait_queued(committer, 8)
    gate.opened.set()
    for t in first + rest:
        t.join(30)
    assert [len(b) for b in gate.batches] == [1, 3, 3, 1]
    assert sorted(p for b in gate.batches for p in b) == sorted(["leader", *(f"f{i}" for i in range(7))])


def test_many_threads_hammering_lose_nothing() -> None:
    written: list[str] = []

    def write(payloads: Sequence[str]) -> Sequence[BaseException | None]:
        written.extend(payloads)
        time.sleep(0.0002)  # a commit takes a moment: callers pile up behind it
        return [None] * len(payloads)

    committer = GroupCommit(write)
    threads, calls = 8, 300

    def work(n: int) -> None:
        for i in range(calls):
            committer.submit(f"{n}-{i}")

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(written) == sorted(f"{n}-{i}" for n in range(threads) for i in range(calls))
    stats = committer.stats()
    assert stats.calls == threads * calls and stats.commits <= stats.calls


def test_a_caller_interrupted_while_queued_leaves_the_queue_without_stalling_it() -> None:
    gate = Gate()
    committer = GroupCommit(gate)
    first, _ = submit_all(committer, ["leader"])
    assert gate.entered.wait(30)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        with pytest.raises(KeyboardInterrupt):
            committer.submit("interrupted")  # queued behind the gated leader, then Ctrl-C
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    gate.opened.set()
    for t in first:
        t.join(30)
    committer.submit("after")  # the committer is idle again, not waiting on the interrupted caller
    assert gate.batches == [["leader"], ["after"]]
