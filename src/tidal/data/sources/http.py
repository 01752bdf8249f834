"""The ``http`` source: a JSON API read page by page into one table.

``data.source: {http: URL, ...}`` (:class:`tidal.spec.source.HttpSourceSpec`) names the API. Each answer
must be JSON; its records (the list at ``records``, a dotted path) are flattened as
``pandas.json_normalize`` flattens them (``{"a": {"b": 1}}`` becomes a column ``a.b``; see
:mod:`tidal.data.records`), and every page's records become one table.
Pagination follows a next link (a field of the body, or the ``Link`` header), numbered pages, or a
cursor. The read is all or nothing: any failure raises a ``SourceError`` before a row is returned, so no
partial table becomes a snapshot.

Refused, each with one line and its fix: an answer that is HTML or not valid JSON, records that are not
a list of objects, a page whose fields differ from the first page's, a pagination loop (a next link or
cursor seen before, the same page twice, more than ``max_pages``), a next link to another host (the
credentials are for the first one), more than ``max_rows`` records or ``max_bytes`` bytes, and what
:mod:`tidal.data.sources.fetch` refuses (401/403, other 4xx, retries spent).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import orjson
import pandas as pd

from tidal.core.errors import SourceError
from tidal.data.records import field_names, flatten_records, records_frame
from tidal.data.sources.base import EmptySourceError, Source, url_scheme
from tidal.data.sources.fetch import Answer, Fetcher, expand
from tidal.spec.source import CursorPages, HttpSourceSpec, LinkPages, NumberedPages

_FIX = "check data.source in tidal.yaml"


class HttpSource(Source):
    """Records from a JSON API (``data.source: {http: URL, records: ..., paginate: ...}``).

    A plain ``https://host/file.csv`` is not this source's: the file sources read it (by extension).
    Given a string (``read_source(url, source="http")``), it reads one JSON answer with the defaults.
    """

    name = "http"
    formats = ("a JSON API (source: {http: URL, records: ..., paginate: ...})",)

    def can_read(self, uri: str) -> bool:
        # Never claims text: an http(s) URL with a file extension is a file; a mapping names this source.
        return False

    def read(self, uri: str, *, base_dir: Path, query: str | None = None) -> pd.DataFrame:
        if url_scheme(uri) not in ("http", "https"):
            raise SourceError(f"the http source reads http:// or https:// URLs, not {uri!r}", hint=_FIX)
        return self.read_config(HttpSourceSpec(http=uri), base_dir=base_dir, query=query)

    def read_config(self, config: Any, *, base_dir: Path, query: str | None = None) -> pd.DataFrame:
        if not isinstance(config, HttpSourceSpec):
            raise SourceError(f"the http source cannot read {type(config).__name__}", hint=_FIX)
        if query is not None:
            raise SourceError("data.query was given, but data.source is an API: a query is only for SQL sources",
                              hint="remove data.query; put the API's query parameters in data.source.params")
        return ApiRead(config).table()


class ApiRead:
    """One read of an API: the pages fetched, their records flattened, all checked, then joined."""

    def __init__(self, config: HttpSourceSpec) -> None:
        self.config = config
        self.shown = config.label
        secrets: list[str] = []
        self.url, used = expand(config.http, "data.source.http")
        secrets += used
        self.params: dict[str, str] = {}
        for key, value in config.params.items():
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            self.params[key], used = expand(text, f"data.source.params.{key}")
            secrets += used
        headers: dict[str, str] = {}
        for key, text in config.headers.items():
            headers[key], used = expand(text, f"data.source.headers.{key}")
            secrets += used
        retries = config.retries
        self.fetcher = Fetcher(timeout=config.timeout, attempts=retries.attempts, budget=retries.budget,
                               backoff=retries.backoff, max_wait=retries.max_wait, max_bytes=config.max_bytes,
                               headers=headers, secrets=tuple(secrets), fix=_FIX)
        self.origin = _origin(self.url)
        self._parsed: dict[int, tuple[Answer, Any]] = {}
        self._last_count = 0

    def table(self) -> pd.DataFrame:
        """Every page's records as one DataFrame (``SourceError`` on any problem; no rows is
        ``EmptySourceError``)."""
        # Each page's records are flattened as they come (and their fields checked against page 1's), then one
        # DataFrame is built of them all: a frame per page, concatenated, costs a DataFrame construction per page
        # and makes a column's type depend on where the pages break (a page of nulls only).
        flat: list[dict[str, Any]] = []
        fields: set[str] | None = None
        rows = 0
        with self.fetcher:
            for number, answer in enumerate(self._pages(), start=1):
                records = self._records(answer, number)
                if not records:
                    break
                rows += len(records)
                if rows > self.config.max_rows:
                    raise SourceError(f"{self.shown} gave more than max_rows ({self.config.max_rows:,}) records by "
                                      f"page {number}: nothing was stored",
                                      hint="raise data.source.max_rows, or narrow the request with data.source.params")
                page = flatten_records(records)
                names = field_names(page)
                if fields is None:
                    fields = names
                else:
                    _same_fields(fields, names, number, self.shown)
                flat += page
                self._last_count = len(records)
        if not flat:
            raise EmptySourceError(f"{self.shown} returned no records", hint="check data.source.records and params")
        df = records_frame(flat, flat=True)
        df.columns = [str(c) for c in df.columns]
        return df

    # -- pages ------------------------------------------------------------------------------------
    def _pages(self) -> Iterator[Answer]:
        """The answers, page after page, until the pagination says there are no more."""
        paginate = self.config.paginate
        max_pages = self.config.max_pages
        self._last_count = 0
        if paginate is None:
            yield self._get(self.url, self.params, 1)
            return
        if isinstance(paginate, NumberedPages):
            yield from self._numbered(paginate, max_pages)
            return
        url: str | None = self.url
        params: dict[str, str] | None = self.params
        seen: dict[str, int] = {}
        number = 0
        while url is not None:
            number += 1
            self._check_page_count(number, max_pages)
            answer = self._get(url, params, number)
            yield answer
            if isinstance(paginate, LinkPages):
                nxt = self._next_link(paginate, answer, number)
                if nxt is None:
                    return
                key, url, params = nxt, nxt, None  # a next link carries its own query
            else:
                assert isinstance(paginate, CursorPages)
                cursor = _scalar_at(self._json(answer, number), paginate.next)
                if cursor is None or cursor == "":
                    return
                key, params = str(cursor), {**self.params, paginate.param: str(cursor)}
                url = self.url
            if key in seen:
                what = "next link" if isinstance(paginate, LinkPages) else "cursor"
                raise SourceError(self.fetcher.redact(
                    f"endless pagination on {self.shown}: page {number} gives the {what} {key!r}, already read for "
                    f"page {seen[key] + 1}"), hint="check data.source.paginate; the API repeats itself")
            seen[key] = number

    def _numbered(self, paginate: NumberedPages, max_pages: int) -> Iterator[Answer]:
        digests: dict[str, int] = {}
        for number in range(1, max_pages + 2):
            self._check_page_count(number, max_pages)
            params = {**self.params, paginate.param: str(paginate.start + number - 1)}
            if paginate.size_param and paginate.size:
                params[paginate.size_param] = str(paginate.size)
            answer = self._get(self.url, params, number)
            digest = hashlib.sha256(answer.body).hexdigest()
            if digest in digests:
                raise SourceError(
                    f"endless pagination on {self.shown}: page {number} is the same as page {digests[digest]} (does "
                    f"the API read the {paginate.param!r} parameter?)",
                    hint="check data.source.paginate.param")
            digests[digest] = number
            yield answer  # the caller stops at an empty page
            if paginate.size and self._last_count < paginate.size:
                return

    def _check_page_count(self, number: int, max_pages: int) -> None:
        if number > max_pages:
            raise SourceError(f"{self.shown} has more than max_pages ({max_pages}) pages: nothing was stored",
                              hint="raise data.source.max_pages, or check data.source.paginate (an endless loop?)")

    def _next_link(self, paginate: LinkPages, answer: Answer, number: int) -> str | None:
        if paginate.next is None:
            link = answer.links.get("next", {}).get("url")
        else:
            found = _scalar_at(self._json(answer, number), paginate.next)
            link = None if found in (None, "") else str(found)
        if link is None:
            return None
        nxt = urljoin(str(answer.url), link)
        if _origin(nxt) != self.origin:
            raise SourceError(self.fetcher.redact(
                f"page {number} of {self.shown} links to another host ({_origin(nxt)}): tidal sends the headers "
                f"only to {self.origin}"), hint="check data.source.paginate.next")
        return nxt

    def _get(self, url: str, params: dict[str, str] | None, number: int) -> Answer:
        shown = self.shown if number == 1 else f"{self.shown} (page {number})"
        return self.fetcher.get(url, params=params, shown=shown)

    # -- answers ----------------------------------------------------------------------------------
    def _json(self, answer: Answer, number: int) -> Any:
        if id(answer) in self._parsed:  # parsed once, for both the records and the next link
            return self._parsed[id(answer)][1]
        where = f"page {number} of {self.shown}" if number > 1 else self.shown
        head = answer.body.lstrip()[:1]
        if answer.content_type in ("text/html", "application/xhtml+xml") or head == b"<":
            raise SourceError(f"{where} answered HTML, not JSON (a login or error page?)",
                              hint="check the URL and the credentials in data.source")
        try:
            value = orjson.loads(answer.body)
        except orjson.JSONDecodeError as exc:
            raise SourceError(f"{where} is not valid JSON: {exc}",
                              hint="check the URL: the API must answer JSON") from None
        self._parsed = {id(answer): (answer, value)}  # the answer is kept, so its id is not reused meanwhile
        return value

    def _records(self, answer: Answer, number: int) -> list[dict[str, Any]]:
        body = self._json(answer, number)
        path = self.config.records
        where = f"page {number} of {self.shown}" if number > 1 else self.shown
        if path is None:
            found = _only_list(body)
            if found is None:
                keys = ", ".join(sorted(body)[:10]) if isinstance(body, dict) else ""
                raise SourceError(f"{where}: cannot tell where the records are" + (f" (keys: {keys})" if keys else ""),
                                  hint="set data.source.records to the dotted path of the list, e.g. data.items")
            records = found
        else:
            records = _at(body, path)
            if records is _MISSING:
                raise SourceError(f"{where} has no {path!r} (data.source.records)",
                                  hint="check data.source.records against what the API answers")
        if records is None:
            records = []
        if not isinstance(records, list):
            raise SourceError(f"{where}: the records at {path or 'the top'} are {type(records).__name__}, not a list",
                              hint="point data.source.records at a list of objects")
        bad = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None)
        if bad is not None:
            raise SourceError(f"{where}: record {bad} is {type(records[bad]).__name__}, not an object",
                              hint="point data.source.records at a list of objects")
        return records


_MISSING = object()


def _at(body: Any, path: str) -> Any:
    """The value at a dotted path of a JSON body, or ``_MISSING``."""
    value = body
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _scalar_at(body: Any, path: str) -> Any:
    value = _at(body, path)
    return None if value is _MISSING or isinstance(value, dict | list) else value


def _only_list(body: Any) -> list[Any] | None:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        lists = [v for v in body.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}" + (f":{parts.port}" if parts.port else "")


def _same_fields(first: set[str], got: set[str], number: int, shown: str) -> None:
    if first == got:
        return
    missing = sorted(first - got)
    extra = sorted(got - first)
    detail = "; ".join(p for p in (f"missing {missing}" if missing else "", f"extra {extra}" if extra else "") if p)
    raise SourceError(f"page {number} of {shown} has different fields from page 1: {detail}; nothing was stored",
                      hint="the API changed shape during the read: read it again, or fix the API")


__all__ = ["ApiRead", "HttpSource"]
