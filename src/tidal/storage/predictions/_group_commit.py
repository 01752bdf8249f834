"""Group commit: many threads write, few transactions commit, and every caller returns only once its
own rows are committed.

A web server logs each prediction before it answers. Committing one transaction per request would
make every request wait for its own commit, one after another; with group commit the requests that
arrive while a commit is under way are written together by the next one.

The scheme is leader/follower, as in LevelDB's write queue, with no background thread:

1. A caller that finds nobody writing becomes the *leader* and writes its own payload at once: a lone
   caller pays no hand-off between threads (the common case at low load).
2. A caller that finds a write under way queues its payload and sleeps on its own lock.
3. The leader writes its payload plus everything queued when it started (one transaction), then wakes
   each caller of that batch with the outcome, and promotes the oldest caller queued meanwhile to be the
   next leader, which takes everything queued by then. So the batch grows with the load by itself:
   nobody waits on a timer.

Errors reach every caller of the batch that failed: the write function returns one outcome per
payload (so a payload that alone is at fault can fail alone), or raises, and then every caller of
that batch gets the exception.
"""

from __future__ import annotations

import _thread
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from tidal.core.errors import StorageError

P = TypeVar("P")

#: Most payloads written by one transaction: keeps one commit (and the wait of the callers in it) short
#: when a burst queues thousands of callers.
MAX_BATCH = 1024

#: The write function: one outcome per payload, in order (None when written), or raise for all.
WriteBatch = Callable[[Sequence[P]], Sequence[BaseException | None]]


@dataclass(frozen=True)
class CommitStats:
    """How well commits were shared: ``calls`` to :meth:`GroupCommit.submit`, ``commits`` (batches
    written), and the largest batch."""

    calls: int
    commits: int
    largest: int

    @property
    def calls_per_commit(self) -> float:
        return self.calls / self.commits if self.commits else 0.0


class _Waiter(Generic[P]):
    """One queued caller. ``wake`` is held from creation; releasing it wakes the caller, who then
    finds ``done`` (with ``error``), or ``promoted``: it leads the next batch. Both are set under the
    committer's mutex before the release."""

    __slots__ = ("done", "error", "payload", "promoted", "wake")

    def __init__(self, payload: P) -> None:
        self.payload = payload
        # A bare lock is the cheapest thing a thread can sleep on (an Event is a Condition and a Lock).
        self.wake = _thread.allocate_lock()
        self.wake.acquire()
        self.done = False
        self.promoted = False
        self.error: BaseException | None = None


class GroupCommit(Generic[P]):
    """Runs ``write`` over batches of payloads submitted from many threads (see the module docstring).

    :meth:`submit` returns when its payload has been written (``write`` returned or raised for a batch
    holding it) and raises the error ``write`` reported for it.
    """

    def __init__(self, write: WriteBatch[P], *, max_batch: int = MAX_BATCH) -> None:
        self._write = write
        self._max_batch = max(1, max_batch)
        self._init_state()
        ref = weakref.ref(self)

        def after_fork_in_child() -> None:
            committer = ref()
            if committer is not None:
                committer._init_state()

        # A thread of the parent may have been leading at the fork; in the child it does not exist, and
        # the state it held would never be released.
        os.register_at_fork(after_in_child=after_fork_in_child)

    def _init_state(self) -> None:
        self._mutex = threading.Lock()
        self._busy = False  # a leader is writing
        self._queue: deque[_Waiter[P]] = deque()
        self._calls = 0
        self._commits = 0
        self._largest = 0

    def stats(self) -> CommitStats:
        """Counts since this committer was made."""
        with self._mutex:
            return CommitStats(self._calls, self._commits, self._largest)

    def submit(self, payload: P) -> None:
        """Write ``payload`` together with whatever other threads submit meanwhile; return once written."""
        waiter: _Waiter[P] | None = None
        with self._mutex:
            self._calls += 1
            if self._busy:
                waiter = _Waiter(payload)
                self._queue.append(waiter)
            else:
                self._busy = True
        if waiter is not None:
            try:
                waiter.wake.acquire()
            except BaseException:
                self._abandon(waiter)
                raise
            if waiter.done:
                if waiter.error is not None:
                    raise waiter.error
                return
            # Promoted: lead the next batch, starting with this payload.
        self._lead(payload)

    def _abandon(self, waiter: _Waiter[P]) -> None:
        """A queued caller was interrupted (KeyboardInterrupt in the main thread) while it waited.

        Still queued: leave the queue, unwritten. Promoted: pass the lead on, or every later caller would
        queue behind a leader that never writes. Taken into a batch: nothing to do.
        """
        with self._mutex:
            if waiter in self._queue:
                self._queue.remove(waiter)
                return
            promoted = waiter.promoted
        if promoted:
            self._pass_lead()

    def _pass_lead(self) -> None:
        """Promote the oldest queued caller to leader, or mark the committer idle."""
        with self._mutex:
            successor = self._queue.popleft() if self._queue else None
            if successor is None:
                self._busy = False
            else:
                successor.promoted = True
        if successor is not None:
            successor.wake.release()

    def _lead(self, payload: P) -> None:
        with self._mutex:
            take = min(len(self._queue), self._max_batch - 1)
            followers = [self._queue.popleft() for _ in range(take)]
        payloads = [payload, *(w.payload for w in followers)]
        outcomes: list[BaseException | None]
        try:
            outcomes = list(self._write(payloads))
            if len(outcomes) != len(payloads):
                raise RuntimeError(f"the write returned {len(outcomes)} outcomes for {len(payloads)} payloads")
        except Exception as exc:
            outcomes = [exc] * len(payloads)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: the leader's own to raise
            interrupted = StorageError("the write of this batch was interrupted; it may not be stored",
                                       hint="retry")
            interrupted.__cause__ = exc
            outcomes = [exc, *([interrupted] * len(followers))]
        finally:
            with self._mutex:
                self._commits += 1
                self._largest = max(self._largest, len(payloads))
            # Hand over before waking the batch, so the next batch starts as soon as possible.
            self._pass_lead()
        with self._mutex:
            for waiter, outcome in zip(followers, outcomes[1:], strict=True):
                waiter.error = outcome
                waiter.done = True
        for waiter in followers:
            waiter.wake.release()
        if outcomes[0] is not None:
            raise outcomes[0]
