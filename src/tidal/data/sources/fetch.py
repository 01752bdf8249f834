"""GET over HTTP for the sources: httpx, with timeouts, bounded retries (tenacity) and a limit on bytes.

One :class:`Fetcher` serves one read (every page of an API, or one file URL): it keeps the bytes read
and the retries spent across all its requests, so that a read is bounded as a whole, not per request.

Retried, with exponential backoff and jitter (``Retry-After`` honoured when the server sends it): 408,
429 and the 5xx answers that may pass (500, 502, 503, 504), a timeout, a refused or dropped connection.
Never retried: 401 and 403 (wrong credentials do not become right), other 4xx, an answer too large.

Secrets: the values of ``${NAME}`` placeholders are given to the fetcher as ``secrets``, and every
message it builds is passed through :meth:`Fetcher.redact`, so that a token echoed back by a library's
error text (a URL with ``?api_key=...``) never reaches a message, a log line or an event. httpx itself logs
each request's full URL (``HTTP Request: GET https://...?api_key=...``) at INFO: while a fetcher is open,
a filter on the ``httpx`` and ``httpcore`` loggers masks the secrets in those records too.
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential, wait_random

from tidal.core.errors import SourceError
from tidal.spec.source import PLACEHOLDER

_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_CHUNK = 1 << 16


class _Transient(Exception):
    """A failure that may pass: retried while the budget lasts, then raised as a ``SourceError``."""

    def __init__(self, what: str, *, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read whole: status, headers, body, and the URL it came from (after redirects)."""

    url: httpx.URL
    status: int
    headers: httpx.Headers
    body: bytes
    links: Mapping[str | None, Mapping[str, str]]

    @property
    def content_type(self) -> str:
        value: str = self.headers.get("content-type", "")
        return value.split(";", 1)[0].strip().lower()


def expand(text: str, where: str) -> tuple[str, list[str]]:
    """``text`` with each ``${NAME}`` replaced by the environment variable NAME, and the values used.

    A variable that is not set (or is empty) is a ``SourceError`` naming it and ``where`` it is used.
    """
    used: list[str] = []

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        got = os.environ.get(name)
        if not got:
            raise SourceError(f"the environment variable {name} is not set (used in {where})",
                              hint=f"export {name}=... before running tidal")
        used.append(got)
        return str(got)

    return PLACEHOLDER.sub(value, text), used


class _Redact(logging.Filter):
    """Masks the secrets in the records of a library's logger (httpx logs every URL it requests)."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = self._redact(text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


_LIBRARY_LOGGERS = ("httpx", "httpcore")


@dataclass
class Fetcher:
    """GETs for one read, under one budget of retries and bytes (see the module docstring)."""

    timeout: float = 30.0
    attempts: int = 3
    budget: int = 10
    backoff: float = 0.5
    max_wait: float = 30.0
    max_bytes: int = 10**9
    headers: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    #: the fix printed with a failure that comes from the spec (a wrong URL, too small a limit)
    fix: str = "check data.source in tidal.yaml"
    bytes_read: int = 0
    retries_used: int = 0
    requests: int = 0
    _client: httpx.Client | None = None
    _filter: _Redact | None = None

    def __enter__(self) -> Fetcher:
        self._client = httpx.Client(timeout=httpx.Timeout(self.timeout), follow_redirects=True,
                                    headers=dict(self.headers))
        if any(self.secrets):
            self._filter = _Redact(self.redact)
            for name in _LIBRARY_LOGGERS:
                logging.getLogger(name).addFilter(self._filter)
        return self

    def __exit__(self, *_: object) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._filter is not None:
            for name in _LIBRARY_LOGGERS:
                logging.getLogger(name).removeFilter(self._filter)
            self._filter = None

    def redact(self, text: str) -> str:
        """``text`` with every secret value replaced by ``***``."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***")
        return text

    def get(self, url: str, *, params: Mapping[str, str] | None = None, shown: str) -> Answer:
        """GET ``url`` (``shown`` is how messages name it), retrying what may pass; ``SourceError`` if it
        fails, or answers with an error status."""
        retrying = Retrying(stop=self._stop, wait=self._wait, retry=retry_if_exception_type(_Transient),
                            before_sleep=self._count, reraise=True)
        try:
            answer: Answer = retrying(self._get_once, url, params)
        except _Transient as exc:
            tries = retrying.statistics.get("attempt_number", 1)
            tried = f" after {tries} tries" if tries > 1 else ""
            if exc.retry_after is not None and exc.retry_after > self.max_wait:
                hint = (f"the server asks to wait {exc.retry_after:g}s, more than retries.max_wait "
                        f"({self.max_wait:g}s): try later, or raise data.source.retries.max_wait")
            else:
                hint = "the server may be down or overloaded: try again later, or raise data.source.retries"
            raise SourceError(self.redact(f"GET {shown} failed{tried}: {exc.what}"), hint=hint) from None
        self._raise_for_status(answer, shown)
        return answer

    # -- one request ------------------------------------------------------------------------------
    def _get_once(self, url: str, params: Mapping[str, str] | None) -> Answer:
        if self._client is None:  # a programming error, not the user's input
            raise RuntimeError("use the Fetcher in a with block")
        self.requests += 1
        try:
            with self._client.stream("GET", url, params=params) as response:
                if response.status_code in _TRANSIENT_STATUS:
                    raise _Transient(f"HTTP {response.status_code} {response.reason_phrase}",
                                     retry_after=_retry_after(response.headers.get("retry-after")))
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and self.bytes_read + int(declared) > self.max_bytes:
                    self._too_many_bytes(self.bytes_read + int(declared))
                chunks: list[bytes] = []
                for chunk in response.iter_bytes(_CHUNK):
                    self.bytes_read += len(chunk)
                    if self.bytes_read > self.max_bytes:
                        self._too_many_bytes(self.bytes_read)
                    chunks.append(chunk)
                return Answer(url=response.url, status=response.status_code, headers=response.headers,
                              body=b"".join(chunks), links=response.links)
        except httpx.TimeoutException as exc:
            raise _Transient(f"no answer within {self.timeout:g}s ({type(exc).__name__})") from None
        except httpx.ConnectError as exc:
            raise _Transient(f"cannot connect ({_reason(exc)})") from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise _Transient(f"the connection broke ({_reason(exc)})") from None
        except httpx.UnsupportedProtocol as exc:
            raise SourceError(self.redact(f"cannot GET {url}: {exc}"), hint=self.fix) from None
        except httpx.HTTPError as exc:  # too many redirects, a decoding error ...
            raise SourceError(self.redact(f"GET failed: {type(exc).__name__}: {_reason(exc)}"), hint=self.fix) from None

    def _too_many_bytes(self, count: int) -> None:
        raise SourceError(f"the read passed max_bytes ({self.max_bytes:,} bytes; {count:,} so far): "
                          "nothing was stored", hint="raise data.source.max_bytes, or narrow the request "
                                                     "with data.source.params")

    def _raise_for_status(self, answer: Answer, shown: str) -> None:
        status = answer.status
        if status < 400:
            return
        reason = httpx.codes.get_reason_phrase(status)
        if status in (401, 403):
            raise SourceError(self.redact(f"GET {shown}: HTTP {status} {reason}: the credentials were refused"),
                              hint="check the token the headers read from the environment (not retried)")
        raise SourceError(self.redact(f"GET {shown}: HTTP {status} {reason}"), hint=self.fix)

    # -- tenacity's policy ------------------------------------------------------------------------
    def _stop(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Transient) and exc.retry_after is not None and exc.retry_after > self.max_wait:
            return True
        return state.attempt_number > self.attempts or self.retries_used >= self.budget

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return exc.retry_after
        # backoff, 2 * backoff, 4 * backoff ... up to max_wait, plus up to one backoff of jitter (so that many
        # clients refused together do not all come back at the same instant)
        backoff = wait_exponential(multiplier=self.backoff, max=self.max_wait) + wait_random(0, self.backoff)
        return min(float(backoff(state)), self.max_wait)

    def _count(self, state: RetryCallState) -> None:
        self.retries_used += 1


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = ["Answer", "Fetcher", "expand"]
