"""The ``redis`` source: sensor readings from a Redis stream, consumed through a consumer group.

``data.source: {redis: URL, stream: KEY, group: tidal, consumer: tidal, ...}``
(:class:`tidal.spec.source.RedisStreamSpec`) names the broker and the stream. This module is the broker's
side only (redis-py, the ``stream`` extra): connect (with a bounded retry for a broker that does not answer),
make sure the group exists, hand back the entries this consumer has not acknowledged, acknowledge them.
Turning entries into a table and a collection into a batch snapshot is :mod:`tidal.data.stream`'s work.

Why a reading is read once and none is lost (docs/spec.md, "A sensor stream"):

- :func:`consume` first claims for this consumer the entries another consumer of the group left pending longer
  than ``claim_idle`` (``XAUTOCLAIM ... JUSTID``: a reader that died under another name, or a renamed
  ``consumer``), then asks for this consumer's *pending* entries (``XREADGROUP ... 0``): the ones a run read but
  never acknowledged, because it was killed, its batch was refused, or the broker went away before the
  ``XACK``, and the ones just claimed, all in id order. Only then does it ask for new ones (``>``). With
  ``max_deliveries``, it also asks how many times each pending entry was delivered (``XPENDING``), so that a
  poison entry is found (:mod:`tidal.data.stream` treats it as ``on_error`` says).
- :func:`acknowledge` runs after the collection's state is committed (the batch snapshot stored, the table
  validated): an entry is acknowledged only once tidal holds it. A kill in between leaves it pending, and the
  next run reads it again; the committed batches (which hold each reading's entry id) tell that run which
  pending entries it already holds (acknowledged then, not collected twice).

A password is read from the environment (``${NAME}``) when the broker is reached, and never appears in a
message: errors name the URL with the password masked. A refused password is one line, not retried.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from tidal.core.errors import SourceError
from tidal.data.sources.base import Source
from tidal.data.sources.fetch import expand
from tidal.spec.source import RedisStreamSpec

_FIX = "check data.source in tidal.yaml"
#: The most entries one XREADGROUP asks for (a collection reads up to max_readings in as many calls as it takes).
_SLICE = 10_000
#: The longest pause between two tries to reach a broker that does not answer.
_MAX_BACKOFF = 2.0


class Entry(NamedTuple):
    """One stream entry: its id (``1717243200000-0``) and fields (None: deleted from the stream since it was
    read, as ``XTRIM`` or ``XDEL`` leave a pending entry). A named tuple: a collection makes one per reading,
    and a frozen dataclass costs several times more to build."""

    id: str
    fields: dict[str, str] | None


@dataclass(frozen=True)
class Consumed:
    """What one :func:`consume` handed back from one stream: the pending entries first (this consumer's, with
    those it claimed from others among them, in id order), then the new ones. ``claimed`` says how many entries
    it claimed from each other consumer, ``claimed_gone`` the ids of claimed entries deleted from the stream
    meanwhile (the broker drops them from the group), ``deliveries`` how many times each pending entry was
    delivered (this time included; only with ``max_deliveries``)."""

    stream: str
    pending: list[Entry]
    new: list[Entry]
    claimed: dict[str, int] = field(default_factory=dict)
    claimed_gone: list[str] = field(default_factory=list)
    deliveries: dict[str, int] = field(default_factory=dict)

    @property
    def entries(self) -> list[Entry]:
        return [*self.pending, *self.new]


class _Down(Exception):
    """The broker did not answer (refused, reset, timed out): worth another try."""


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id as numbers, so that ids compare in stream order (``"9-0" < "10-0"``)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _redis() -> Any:
    try:
        return importlib.import_module("redis")
    except ImportError:
        raise SourceError("the redis source needs redis-py, which is not installed",
                          hint="pip install 'tidal[stream]'") from None


class Broker:
    """One connection to the broker of a :class:`RedisStreamSpec`, with its secret kept out of messages."""

    def __init__(self, config: RedisStreamSpec) -> None:
        self.config = config
        self.shown = config.label
        self.url, used = expand(config.redis, "data.source.redis")
        self.password: str | None = None
        if config.password is not None:
            self.password, more = expand(config.password, "data.source.password")
            used += more
        self.secrets = tuple(s for s in used if s)
        self._client: Any = None

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    # -- connecting -------------------------------------------------------------------------------
    def connect(self) -> Any:
        """The client, once the broker answered a PING: retried with backoff for ``retry_for`` seconds while it
        does not answer; a refused password or an unknown URL is a SourceError at once."""
        if self._client is not None:
            return self._client
        redis = _redis()
        config = self.config
        started = time.monotonic()
        backoff = wait_exponential(multiplier=0.1, max=_MAX_BACKOFF)

        def wait(state: RetryCallState) -> float:  # the last wait ends at retry_for, not past it
            return max(0.0, min(float(backoff(state)), config.retry_for - (time.monotonic() - started)))

        retrying = Retrying(stop=stop_after_delay(config.retry_for), reraise=True, wait=wait,
                            retry=retry_if_exception_type(_Down))
        try:
            self._client = retrying(self._connect_once, redis)
        except _Down as exc:
            tries = retrying.statistics.get("attempt_number", 1)
            spent = time.monotonic() - started
            raise SourceError(self.redact(
                f"the broker {self.shown} does not answer ({exc}) after {tries} tries in {spent:.1f}s: nothing was "
                "collected"), hint="start the broker or check data.source.redis; data.source.retry_for says how "
                                   "long to keep trying") from None
        return self._client

    def _connect_once(self, redis: Any) -> Any:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        try:
            client = redis.Redis.from_url(
                self.url, password=self.password, decode_responses=True, socket_connect_timeout=self.config.timeout,
                socket_timeout=self.config.timeout + self.config.wait, retry=Retry(NoBackoff(), 0))
        except ValueError as exc:
            raise SourceError(self.redact(f"data.source.redis {self.shown!r} is not a Redis URL: {exc}"),
                              hint="e.g. redis: redis://127.0.0.1:6379/0") from None
        try:
            client.ping()
        except redis.AuthenticationError as exc:
            client.close()
            raise SourceError(self.redact(f"the broker {self.shown} refused the credentials ({_reason(exc)})"),
                              hint="check the password data.source reads from the environment (not retried)") \
                from None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            client.close()
            raise _Down(self.redact(_reason(exc))) from None
        except redis.ResponseError as exc:  # NOAUTH: a password is needed and none was given
            client.close()
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                raise SourceError(self.redact(f"the broker {self.shown} refused the credentials ({_reason(exc)})"),
                                  hint="set data.source.password (\"${REDIS_PASSWORD}\") and the variable (not "
                                       "retried)") from None
            raise self._error("PING", exc) from None
        return client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _error(self, what: str, exc: BaseException) -> SourceError:
        return SourceError(self.redact(f"{what} on {self.shown} failed: {_reason(exc)}: nothing was collected"),
                           hint="the broker may have gone away: run again (unacknowledged readings are read again)")

    @contextmanager
    def talking(self, what: str) -> Iterator[Any]:
        """The client, with any error of the broker while in the block as one SourceError naming ``what``."""
        redis = _redis()
        client = self.connect()
        try:
            yield client
        except redis.AuthenticationError as exc:
            raise SourceError(self.redact(f"the broker {self.shown} refused the credentials ({_reason(exc)})"),
                              hint="check data.source.password (not retried)") from None
        except redis.RedisError as exc:
            raise self._error(what, exc) from None

    # -- the consumer group -----------------------------------------------------------------------
    def ensure_group(self, stream: str) -> None:
        """Create the group on ``stream`` (from its first entry) unless it exists; SourceError naming the stream
        when there is no such stream (a typo is more likely than a fleet that never sent anything)."""
        redis = _redis()
        with self.talking(f"XGROUP CREATE {stream}") as client:
            if not client.exists(stream):
                raise SourceError(f"the stream {stream!r} does not exist on {self.shown}",
                                  hint="check data.source.stream (and labels.stream): the devices create it with "
                                       "their first XADD")
            try:
                client.xgroup_create(stream, self.config.group, id="0")
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):  # the group exists already: the usual case after the first run
                    raise

    def consume(self, stream: str, count: int) -> Consumed:
        """Up to ``count`` entries of ``stream`` for this consumer: first its pending ones (read before, never
        acknowledged, and those of other consumers idle past ``claim_idle``, claimed now), then new ones
        (waiting ``wait`` seconds for a first one when there is none)."""
        config = self.config
        self.ensure_group(stream)
        claimed: dict[str, int] = {}
        gone: list[str] = []
        if config.claim_idle > 0:
            with self.talking(f"XAUTOCLAIM {stream}") as client:
                claimed, gone = self._claim(client, stream, count)
        with self.talking(f"XREADGROUP {stream}") as client:
            pending = self._read(client, stream, "0", count, block=None)
            new: list[Entry] = []
            if len(pending) < count:
                block = int(config.wait * 1000) if config.wait > 0 else None
                new = self._read(client, stream, ">", count - len(pending), block=block)
        deliveries: dict[str, int] = {}
        if config.max_deliveries is not None and pending:
            with self.talking(f"XPENDING {stream}") as client:
                deliveries = self._deliveries(client, stream, pending)
        return Consumed(stream=stream, pending=pending, new=new, claimed=claimed, claimed_gone=gone,
                        deliveries=deliveries)

    def _owners(self, client: Any, stream: str) -> dict[str, int]:
        """How many pending entries each consumer of the group holds (``XPENDING`` summary)."""
        summary = client.xpending(stream, self.config.group)
        return {str(c["name"]): int(c["pending"]) for c in summary.get("consumers") or []}

    def _claim(self, client: Any, stream: str, count: int) -> tuple[dict[str, int], list[str]]:
        """Claim for this consumer (``XAUTOCLAIM ... JUSTID``) up to ``count`` entries pending longer than
        ``claim_idle`` under another consumer, so that :meth:`_read`'s pending read then hands them back in id
        order with this consumer's own; how many came from each consumer, and the ids of claimed entries that
        were deleted from the stream. JUSTID: the claim itself is not a delivery (the read that follows is)."""
        config = self.config
        before = self._owners(client, stream)
        if not any(n for name, n in before.items() if name != config.consumer):
            return {}, []  # no one else holds anything: nothing to scan
        # redis-py's JUSTID answer keeps the claimed ids only; the cursor is needed to go on: the raw answer
        client.set_response_callback("XAUTOCLAIM", lambda answer, **_: answer)
        idle_ms = max(1, round(config.claim_idle * 1000))
        cursor, claimed, gone = "0-0", 0, []
        while claimed < count:
            try:
                answer = client.execute_command("XAUTOCLAIM", stream, config.group, config.consumer, idle_ms, cursor,
                                                "COUNT", min(count - claimed, _SLICE), "JUSTID")
            except _redis().ResponseError as exc:
                if "unknown command" not in str(exc).lower():
                    raise
                raise SourceError(f"the broker {self.shown} has no XAUTOCLAIM (Redis 6.2 or later has it): the "
                                  "entries other consumers left pending cannot be claimed",
                                  hint="upgrade the broker, or set data.source.claim_idle: 0") from None
            cursor = str(answer[0])
            claimed += len(answer[1])
            gone += [str(i) for i in (answer[2] if len(answer) > 2 else [])]  # Redis 7: deleted entries
            if cursor == "0-0":
                break
        if not claimed and not gone:
            return {}, gone
        after = self._owners(client, stream)
        return {name: n - after.get(name, 0) for name, n in before.items()
                if name != config.consumer and n > after.get(name, 0)}, gone

    def _deliveries(self, client: Any, stream: str, pending: list[Entry]) -> dict[str, int]:
        """How many times each of this consumer's ``pending`` entries was delivered (``XPENDING`` by range)."""
        out: dict[str, int] = {}
        start = pending[0].id
        while len(out) < len(pending):
            rows = client.xpending_range(stream, self.config.group, start, pending[-1].id,
                                         min(len(pending) - len(out), _SLICE), consumername=self.config.consumer)
            for row in rows:
                out[str(row["message_id"])] = int(row["times_delivered"])
            if not rows:
                break
            start = "(" + str(rows[-1]["message_id"])  # exclusive: the next slice starts after the last
        return out

    def _read(self, client: Any, stream: str, start: str, count: int, *, block: int | None) -> list[Entry]:
        out: list[Entry] = []
        while len(out) < count:
            # In slices: redis-py parses an answer in Python, and several answers of _SLICE entries cost less than
            # one of them all (its buffer grows with the answer). Pending entries come back from the id after the
            # last; new ones (">") from where the group is, waiting ``block`` for the first slice only.
            answer = client.xreadgroup(self.config.group, self.config.consumer, {stream: start},
                                       count=min(count - len(out), _SLICE), block=block if not out else None)
            got = answer[0][1] if answer else []
            if isinstance(answer, dict):  # RESP3 answers a mapping
                got = answer.get(stream, [[]])[0]
            entries = [Entry(str(i), dict(f) if f else None) for i, f in got]
            out += entries
            if not entries:
                break
            if start != ">":
                start = entries[-1].id
        return out

    def acknowledge(self, stream: str, ids: list[str]) -> int:
        """``XACK`` the entries ``ids`` of ``stream`` (in slices); the number the broker acknowledged."""
        done = 0
        with self.talking(f"XACK {stream}") as client:
            for at in range(0, len(ids), 10_000):
                done += int(client.xack(stream, self.config.group, *ids[at:at + 10_000]))
        return done

    def every_entry(self, stream: str, limit: int) -> list[Entry]:
        """Every entry of ``stream`` (``XRANGE``, no group: nothing is consumed or acknowledged), at most
        ``limit`` of them; SourceError when there are more."""
        with self.talking(f"XRANGE {stream}") as client:
            if not client.exists(stream):
                raise SourceError(f"the stream {stream!r} does not exist on {self.shown}", hint=_FIX)
            length = int(client.xlen(stream))
            if length > limit:
                raise SourceError(f"the stream {stream!r} on {self.shown} holds {length:,} entries, more than "
                                  f"max_readings ({limit:,}) to read whole", hint="raise data.source.max_readings")
            out: list[Entry] = []
            start = "-"
            while len(out) < length:  # in slices, as _read does (entries added since XLEN wait for the next read)
                got = client.xrange(stream, start, "+", count=min(length - len(out), _SLICE))
                out += [Entry(id=str(i), fields=dict(f) if f else None) for i, f in got]
                if not got:
                    break
                start = "(" + out[-1].id
        return out


class RedisStreamSource(Source):
    """Readings from a Redis stream (``data.source: {redis: URL, stream: KEY, ...}``).

    Read as a table (:meth:`read_config`: a retrain of the loop without ``data.collect``, ``tidal backtest``), the
    stream is read whole with ``XRANGE`` (in slices), through no group: nothing is consumed. ``tidal run`` collects
    it through the group instead, one batch of new readings at a time (:mod:`tidal.loop.stream`).
    """

    name = "redis"
    formats = ("a Redis stream (source: {redis: URL, stream: KEY, group: ...})",)

    def can_read(self, uri: str) -> bool:
        return False  # a mapping names this source; a redis:// URL as text is not a table

    def read(self, uri: str, *, base_dir: Path, query: str | None = None) -> pd.DataFrame:
        raise SourceError(f"a Redis stream is written as a mapping, not as the text {uri!r}",
                          hint="write data.source: {redis: redis://host:6379/0, stream: readings}")

    def read_config(self, config: Any, *, base_dir: Path, query: str | None = None) -> pd.DataFrame:
        from tidal.data.stream import readings_table

        if not isinstance(config, RedisStreamSpec):
            raise SourceError(f"the redis source cannot read {type(config).__name__}", hint=_FIX)
        if query is not None:
            raise SourceError("data.query was given, but data.source is a stream: a query is only for SQL sources",
                              hint="remove data.query")
        broker = Broker(config)
        try:
            readings = broker.every_entry(config.stream, config.max_readings)
            labels = broker.every_entry(config.labels.stream, config.max_readings) if config.labels else None
        finally:
            broker.close()
        return readings_table(config, readings, labels)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = ["Broker", "Consumed", "Entry", "RedisStreamSource", "entry_key"]
