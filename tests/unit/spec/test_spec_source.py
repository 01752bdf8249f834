"""``data.source`` as text or as a mapping ``{http: URL, ...}``: parsed, refused with one line naming the key,
and never holding a secret (tidal.spec.source)."""

from __future__ import annotations

import pytest

from tidal.core.errors import SpecError
from tidal.spec import parse_spec
from tidal.spec.source import CursorPages, HttpSourceSpec, LinkPages, NumberedPages, source_label

BASE = """\
version: 1
name: api
data:
  target: y
  source: {source}
model: {{estimator: sklearn.linear_model.LogisticRegression}}
"""


def _parse(source: str) -> object:
    return parse_spec(BASE.format(source=source)).data.source


def test_text_stays_text() -> None:
    assert _parse("data/train.csv") == "data/train.csv"
    assert _parse("sqlite:///f.db?table=t") == "sqlite:///f.db?table=t"


def test_a_mapping_with_every_key() -> None:
    source = _parse('{http: "https://api.example.com/v1/x", records: data.items, '
                    'paginate: {kind: page, size_param: per_page, size: 100}, params: {q: north, n: 3, all: true}, '
                    'headers: {Authorization: "Bearer ${API_TOKEN}"}, timeout: 500ms, retries: 2, '
                    'max_pages: 5, max_rows: 10, max_bytes: 2MiB}')
    assert isinstance(source, HttpSourceSpec)
    assert isinstance(source.paginate, NumberedPages) and source.paginate.size == 100
    assert source.timeout == 0.5 and source.retries.attempts == 2 and source.retries.budget == 10
    assert source.max_bytes == 2 * 2**20
    assert source.label == "https://api.example.com/v1/x?q=north&n=3&all=true"


def test_pagination_kinds() -> None:
    assert isinstance(_parse('{http: "https://a.example/x", paginate: {kind: link}}').paginate, LinkPages)  # type: ignore[attr-defined]
    cursor = _parse('{http: "https://a.example/x", paginate: {kind: cursor, next: meta.next}}').paginate  # type: ignore[attr-defined]
    assert isinstance(cursor, CursorPages) and cursor.param == "cursor"


@pytest.mark.parametrize(("source", "parts"), [
    ("{ftp: x}", ["data.source:", "exactly one of the keys http"]),
    ("5", ["data.source:", "a path, glob or URL, or a mapping"]),
    ('{http: "ftp://a.example/x"}', ["data.source.http:", "http:// or https://"]),
    ('{http: "https://a.example", timeoutt: 3}', ["data.source.timeoutt:", "did you mean 'timeout'?"]),
    ('{http: "https://a.example", timeout: soon}', ["data.source.timeout:", "a duration"]),
    ('{http: "https://a.example", paginate: {kind: pages}}', ["data.source.paginate.kind:", "link, page, cursor"]),
    ('{http: "https://a.example", paginate: {kind: cursor}}', ["data.source.paginate.next:", "required"]),
    ('{http: "https://a.example", retries: {backof: 1}}', ["data.source.retries.backof:", "'backoff'"]),
    ('{http: "https://a.example", headers: {Authorization: Bearer abc123}}',
     ["data.source.headers.Authorization:", "written out", "${API_TOKEN}"]),
    ('{http: "https://a.example", params: {api_key: abc123}}', ["data.source.params.api_key:", "written out"]),
    ('{http: "https://me:abc123@a.example/x"}', ["data.source.http:", "password"]),
])
def test_bad_sources_name_the_key(source: str, parts: list[str]) -> None:
    with pytest.raises(SpecError) as err:
        _parse(source)
    message = str(err.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    assert "abc123" not in message  # a refused secret is not echoed back


def test_the_digest_holds_the_placeholder_not_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    text = BASE.format(source='{http: "https://a.example/x", headers: {Authorization: "Bearer ${API_TOKEN}"}}')
    monkeypatch.setenv("API_TOKEN", "first-secret")
    first = parse_spec(text)
    monkeypatch.setenv("API_TOKEN", "second-secret")
    second = parse_spec(text)
    assert first.digest == second.digest
    dumped = first.model_dump_json()
    assert "${API_TOKEN}" in dumped and "secret" not in dumped


def test_label_masks_a_password_and_keeps_placeholders() -> None:
    spec = HttpSourceSpec(http="https://me:${PW}@a.example/x", params={"api_key": "${KEY}"})
    assert source_label(spec) == "https://me:***@a.example/x?api_key=${KEY}"
