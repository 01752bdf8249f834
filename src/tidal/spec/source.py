"""``data.source`` as a mapping: a JSON API read over HTTP (read by :mod:`tidal.data.sources.http`), or a
sensor stream on a Redis broker (``{redis: URL, stream: KEY, ...}``: :mod:`tidal.data.sources.stream`).

``data.source`` is either text (a path, a glob, a file URL or a SQLAlchemy URL, as it always was) or a
mapping whose one *kind key* says what it is and holds its address::

    source:
      http: https://api.example.com/v1/readings      # the kind key: a JSON API
      records: data.items                              # where the records are in each answer
      paginate: {kind: link, next: links.next}         # or {kind: page, ...}, {kind: cursor, ...}
      params: {station: north, api_key: "${API_KEY}"}
      headers: {Authorization: "Bearer ${API_TOKEN}"}
      timeout: 10s

Each kind is a model here and an entry in :data:`SOURCE_KINDS` (``http``, ``redis``): the mapping keeps
the same shape. ``${NAME}`` in a header, a parameter or the URL is read from the environment when the
source is read, never before: the spec (and so its digest, the snapshots' lineage, events and messages)
holds the placeholder, never the secret. A secret written out where a placeholder belongs (an
``Authorization`` header, an ``api_key`` parameter) is refused, because it would be stored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, field_validator

from tidal.spec.errors import issues_from_validation_error, show, spec_problem
from tidal.spec.section import NonEmpty, Section

#: ``${NAME}``: a value read from the environment when the source is read.
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Header and parameter names whose value is a credential: a literal value there would be stored.
_SECRET_HEADER = re.compile(r"^(authorization|proxy-authorization|cookie)$|token|secret|api[-_]?key|password",
                            re.IGNORECASE)
_SECRET_PARAM = re.compile(r"token|secret|api[-_]?key|password|^key$|^sig(nature)?$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$", re.IGNORECASE)
_BYTES = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def _seconds(value: Any) -> Any:
    """``10``, ``2.5``, ``"10s"``, ``"500ms"``, ``"2m"`` → seconds (a float); anything else is left to fail."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return float(match.group(1)) * _SECONDS[match.group(2)]
    return value


def _bytes(value: Any) -> Any:
    """``1000``, ``"10MB"``, ``"1GiB"`` → bytes (an int); anything else is left to fail."""
    if isinstance(value, str) and (match := _SIZE.match(value)):
        return int(float(match.group(1)) * _BYTES[(match.group(2) or "b").lower()])
    return value


Seconds = Annotated[float, BeforeValidator(_seconds), Field(gt=0, allow_inf_nan=False)]
Bytes = Annotated[int, BeforeValidator(_bytes), Field(ge=1)]


# -- pagination ---------------------------------------------------------------------------------------


class LinkPages(Section):
    """Each answer names the next page's URL: in the body, or in the ``Link`` header (``rel="next"``)."""

    kind: Literal["link"] = Field(description="link")
    next: NonEmpty | None = Field(
        None, description="the dotted path of the next page's URL in the body (links.next), or null (the Link "
                          "header)")


class NumberedPages(Section):
    """Pages asked for by number (``?page=1``, ``?page=2`` ...) until one comes back empty or short."""

    kind: Literal["page"] = Field(description="page")
    param: NonEmpty = Field("page", description="the query parameter that holds the page number")
    start: int = Field(1, ge=0, description="a whole number: the first page's number (0 or 1)")
    size_param: NonEmpty | None = Field(None, description="the query parameter that holds the page size, or null")
    size: int | None = Field(
        None, ge=1, description="a whole number: the page size to ask for (a shorter page is the last), or null")


class CursorPages(Section):
    """Each answer holds a cursor that is sent back as a query parameter for the next page."""

    kind: Literal["cursor"] = Field(description="cursor")
    param: NonEmpty = Field("cursor", description="the query parameter that carries the cursor")
    next: NonEmpty = Field(description="the dotted path of the next cursor in the body (meta.next_cursor)")


PAGINATE_KINDS: dict[str, type[Section]] = {"link": LinkPages, "page": NumberedPages, "cursor": CursorPages}


def _paginate_from_yaml(value: Any) -> Any:
    if value is None or isinstance(value, tuple(PAGINATE_KINDS.values())):
        return value
    kinds = ", ".join(PAGINATE_KINDS)
    if not isinstance(value, dict):
        raise spec_problem("paginate_type", f"expected a paginate: section (kind: {kinds}), got {show(value)}",
                           hint="e.g. paginate: {kind: link, next: links.next}")
    kind = value.get("kind")
    if kind not in PAGINATE_KINDS:
        raise spec_problem("paginate_kind", f"expected kind: one of {kinds}, got {show(kind)}",
                           hint="link: a next URL in the body or the Link header; page: numbered pages; cursor: "
                                "a cursor in the body sent back as a parameter", at=("kind",))
    return _as_model(PAGINATE_KINDS[kind], value)


Paginate = Annotated[LinkPages | NumberedPages | CursorPages, BeforeValidator(_paginate_from_yaml)]


class RetrySpec(Section):
    """Retries of a request that failed for a reason that may pass (429, 5xx, a timeout, a refused
    connection), with exponential backoff; a ``Retry-After`` header is honoured."""

    attempts: int = Field(3, ge=0, le=20, description="a whole number from 0 to 20: retries of one request")
    budget: int = Field(10, ge=0, description="a whole number: retries in all, over every page of one read")
    backoff: Seconds = Field(0.5, description="a duration (0.5s): the first wait, doubled at each retry")
    max_wait: Seconds = Field(
        30.0, description="a duration (30s): the longest wait; a longer Retry-After gives up at once")


def _retries_from_yaml(value: Any) -> Any:
    return {"attempts": value} if isinstance(value, int) and not isinstance(value, bool) else value


class HttpSourceSpec(Section):
    """A JSON API: every answer is read, its records found and flattened (``pandas.json_normalize``)."""

    http: NonEmpty = Field(description="the API's http:// or https:// URL")
    records: NonEmpty | None = Field(
        None, description="the dotted path of the list of records in each answer (data.items), or null (the "
                          "answer itself, or its only list)")
    paginate: Paginate | None = Field(
        None, description="a paginate: section with kind link, page or cursor, or null (one answer)")
    params: dict[NonEmpty, str | int | float | bool] = Field(
        default_factory=dict, description="a mapping of query parameters; ${NAME} is read from the environment")
    headers: dict[NonEmpty, str] = Field(
        default_factory=dict, description="a mapping of request headers; ${NAME} is read from the environment")
    timeout: Seconds = Field(10.0, description="a duration (10s): the longest wait to connect and for each read")
    retries: Annotated[RetrySpec, BeforeValidator(_retries_from_yaml)] = Field(
        default_factory=RetrySpec, description="a whole number (retries of one request) or a retries: section "
                                               "(attempts, budget, backoff, max_wait)")
    max_pages: int = Field(1000, ge=1, description="a whole number: the most pages one read may take")
    max_rows: int = Field(1_000_000, ge=1, description="a whole number: the most records one read may hold")
    max_bytes: Bytes = Field(
        100 * 10**6, description="a size (100MB) or a whole number of bytes: the most one read may download")

    @field_validator("http")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise spec_problem("http_url", f"expected an http:// or https:// URL, got {show(url)}",
                               hint="write the API's full address, e.g. https://api.example.com/v1/items")
        if parts.password and not PLACEHOLDER.search(parts.password):
            raise spec_problem("secret_in_spec", "the URL holds a password, which would be stored with the spec",
                               hint="write it as https://user:${API_PASSWORD}@host/... and set API_PASSWORD")
        return url

    @field_validator("headers")
    @classmethod
    def _no_secret_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if _SECRET_HEADER.search(name) and not PLACEHOLDER.search(value):
                raise spec_problem(
                    "secret_in_spec", f"the {name} header is written out: a credential in tidal.yaml is stored with "
                                      "the spec (its digest, the run's record)",
                    hint=f'read it from the environment: {name}: "Bearer ${{API_TOKEN}}" (or "${{API_TOKEN}}"), '
                         "then export API_TOKEN=...", at=(name,))
        return headers

    @field_validator("params")
    @classmethod
    def _no_secret_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        for name, value in params.items():
            if _SECRET_PARAM.search(name) and not (isinstance(value, str) and PLACEHOLDER.search(value)):
                raise spec_problem(
                    "secret_in_spec", f"the {name} parameter is written out: a credential in tidal.yaml is stored "
                                      "with the spec",
                    hint=f'read it from the environment: {name}: "${{API_KEY}}", then export API_KEY=...', at=(name,))
        return params

    @property
    def label(self) -> str:
        """The URL with its parameters as written (placeholders, never their values): the lineage of a
        snapshot read from it, and the name messages give it."""
        return source_label(self)


# -- a sensor stream (Redis Streams) --------------------------------------------------------------------

Wait = Annotated[float, BeforeValidator(_seconds), Field(ge=0, allow_inf_nan=False)]


class StreamLabelsSpec(Section):
    """Labels that arrive on a stream of their own, joined to the readings by an id column."""

    stream: NonEmpty = Field(description="the key of the stream of labels (read with the same group and consumer)")
    id: NonEmpty = Field(description="the column, in both the readings and the labels, that joins a label to its "
                                     "reading")


class RedisStreamSpec(Section):
    """Readings pushed to a Redis stream, consumed through a consumer group (:mod:`tidal.data.sources.stream`)."""

    redis: NonEmpty = Field(description="the broker's redis:// or rediss:// URL (redis://host:6379/0); a password "
                                        "in it is written ${NAME}")
    stream: NonEmpty = Field(description="the key of the stream the devices add readings to")
    group: NonEmpty = Field("tidal", description="the consumer group tidal reads through (created if missing)")
    consumer: NonEmpty = Field("tidal", description="this reader's name in the group: keep it fixed, so that a "
                                                    "run re-reads what a killed run read but never acknowledged")
    field: NonEmpty | None = Field(
        "data", description="the entry field that holds the reading as a JSON object, or null (the entry's "
                            "fields are the columns, each value read as JSON when it is JSON, else as text)")
    password: NonEmpty | None = Field(None, description="the password, written ${NAME} (read from the environment)"
                                                        ", or null")
    max_readings: int = Field(100_000, ge=1, description="a whole number: the most readings one collection takes "
                                                         "(the rest wait for the next)")
    wait: Wait = Field(0.0, description="a duration: how long a collection waits for a first new reading (0: none)")
    timeout: Seconds = Field(5.0, description="a duration (5s): the longest wait to connect and for each answer")
    retry_for: Wait = Field(30.0, description="a duration (30s): how long to keep trying a broker that does not "
                                              "answer, with backoff (0: no retry); a refused password is not retried")
    claim_idle: Wait = Field(
        600.0, description="a duration (10m): entries pending this long under another consumer of the group (a "
                           "reader that died, or a consumer that was renamed) are claimed (XAUTOCLAIM) and collected "
                           "with the rest; 0: never claimed")
    max_deliveries: int | None = Field(
        None, ge=1, description="a whole number (1 or more), or null (no limit): an entry delivered more times than "
                                "this (a poison reading: its batches keep failing) is a bad reading, as on_error says")
    on_error: Literal["refuse", "skip"] = Field(
        "refuse", description="refuse (a reading that is not JSON, or not an object, or delivered more than "
                              "max_deliveries times, stops the collection: nothing is stored or acknowledged) or skip "
                              "(it is left out and acknowledged, and the run warns naming its entry id)")
    entry_column: NonEmpty = Field("stream_id", description="the column of each batch snapshot that holds the "
                                                            "reading's stream entry id (left out of the table "
                                                            "trained on)")
    labels: StreamLabelsSpec | None = Field(
        None, description="a labels: section (stream, id): labels on a stream of their own, or null (the readings "
                          "carry the target)")

    @field_validator("redis")
    @classmethod
    def _redis_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("redis", "rediss") or not parts.netloc:
            raise spec_problem("redis_url", f"expected a redis:// or rediss:// URL, got {show(url)}",
                               hint="e.g. redis: redis://127.0.0.1:6379/0")
        if parts.password and not PLACEHOLDER.search(parts.password):
            raise spec_problem("secret_in_spec", "the URL holds a password, which would be stored with the spec",
                               hint="write it as redis://:${REDIS_PASSWORD}@host:6379/0 (or password: "
                                    '"${REDIS_PASSWORD}") and set REDIS_PASSWORD')
        return url

    @field_validator("password")
    @classmethod
    def _password_placeholder(cls, value: str | None) -> str | None:
        if value is not None and not PLACEHOLDER.search(value):
            raise spec_problem("secret_in_spec", "the password is written out: a credential in tidal.yaml is stored "
                                                 "with the spec", hint='write password: "${REDIS_PASSWORD}" and '
                                                                       "export REDIS_PASSWORD=...")
        return value

    @property
    def label(self) -> str:
        """The broker's URL (any password masked) and the stream: the lineage of a snapshot read from it."""
        return source_label(self)


#: The kind keys of a mapping ``data.source``, and the model each one is read into.
SOURCE_KINDS: dict[str, type[Section]] = {"http": HttpSourceSpec, "redis": RedisStreamSpec}


def source_from_yaml(value: Any) -> Any:
    """The validator of ``data.source``: text stays text, a mapping becomes the model its kind key names.

    The mapping is validated here rather than by a pydantic union, so that an error names the key as the
    user wrote it (``data.source.timeout``), not a union member.
    """
    if isinstance(value, str) and not value:
        raise spec_problem("string_too_short", "expected where the data is: a file path, a glob or a URI, or a "
                                               "mapping {http: URL, ...} or {redis: URL, ...}, got ''",
                           hint="e.g. data/train.csv, data/*.parquet or s3://bucket/data.parquet")
    if isinstance(value, (str, *SOURCE_KINDS.values())):
        return value
    kinds = ", ".join(SOURCE_KINDS)
    if not isinstance(value, dict):
        raise spec_problem("source_type", f"expected a path, glob or URL, or a mapping with one of the keys {kinds}; "
                                          f"got {show(value)}", hint="e.g. source: data/train.csv")
    found = [k for k in SOURCE_KINDS if k in value]
    if len(found) != 1:
        what = f"both {' and '.join(found)}" if found else "none of them"
        raise spec_problem("source_kind", f"a mapping source needs exactly one of the keys {kinds}; it has {what}",
                           hint="e.g. source: {http: https://api.example.com/items, records: data} or "
                                "{redis: redis://host:6379/0, stream: readings}")
    return _as_model(SOURCE_KINDS[found[0]], value)


def _as_model(model: type[Section], value: dict[str, Any]) -> Section:
    """``value`` validated as ``model``, its first problem raised with the key path below it."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        issue = issues_from_validation_error(exc, model)[0]
        err = exc.errors(include_url=False)[0]
        at = tuple(err["loc"]) + tuple((err.get("ctx") or {}).get("at") or ())
        raise spec_problem("source_key", issue.message, hint=issue.hint, at=at) from None


SourceSpec = Annotated[NonEmpty | HttpSourceSpec | RedisStreamSpec, BeforeValidator(source_from_yaml)]


def source_label(source: str | BaseModel) -> str:
    """How ``data.source`` is named in lineage and messages: text as written; an API by its URL and the
    parameters as written (``${NAME}`` placeholders stay), any password in the URL masked."""
    if isinstance(source, str):
        return source
    if isinstance(source, HttpSourceSpec):
        url = re.sub(r"^([^:/]+://[^:/@]*):[^@]*@", r"\1:***@", source.http)
        if source.params:
            sep = "&" if "?" in url else "?"
            url += sep + "&".join(f"{k}={_param_text(v)}" for k, v in source.params.items())
        return url
    if isinstance(source, RedisStreamSpec):
        url = re.sub(r"^([^:/]+://[^:/@]*):[^@]*@", r"\1:***@", source.redis)
        return f"{url} stream {source.stream}"
    return str(source)


def _param_text(value: str | int | float | bool) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


__all__ = [
    "PAGINATE_KINDS",
    "PLACEHOLDER",
    "SOURCE_KINDS",
    "CursorPages",
    "HttpSourceSpec",
    "LinkPages",
    "NumberedPages",
    "Paginate",
    "RedisStreamSpec",
    "RetrySpec",
    "SourceSpec",
    "StreamLabelsSpec",
    "source_from_yaml",
    "source_label",
]
