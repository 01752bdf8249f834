"""The http source against a real JSON API on 127.0.0.1 (tests/api_server.py): pagination of every kind,
retries on 429 and 500, timeouts, and every bad answer refused with one line and nothing returned."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_wine

from tests.api_server import TOKEN, Api, free_port, serve
from tidal.core.errors import SourceError
from tidal.data.sources import EmptySourceError, read_source
from tidal.data.sources.fetch import Fetcher
from tidal.spec.source import HttpSourceSpec, source_from_yaml

RECORDS = [{"id": i, "size": i * 1.5, "color": "red" if i % 3 else "blue", "meta": {"ok": i % 2 == 0}}
           for i in range(120)]
FAST = {"retries": {"attempts": 2, "backoff": "10ms"}}


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with serve(RECORDS, page_size=50) as server:
        yield server


def _read(api: Api, path: str, base: Path, **keys: Any) -> pd.DataFrame:
    config = source_from_yaml({"http": api.url + path, **FAST, **keys})
    return read_source(config, base_dir=base)


def _expected() -> pd.DataFrame:
    return pd.json_normalize(RECORDS)


def test_numbered_pages_records_path_and_flattening(api: Api, tmp_path: Path) -> None:
    df = _read(api, "/items", tmp_path, records="data.items",
               paginate={"kind": "page", "size_param": "per_page", "size": 40})
    pd.testing.assert_frame_equal(df, _expected())
    assert "meta.ok" in df.columns  # nested objects become dotted columns


def test_numbered_pages_without_a_size_stop_at_an_empty_page(api: Api, tmp_path: Path) -> None:
    before = api.requests["/items"]
    df = _read(api, "/items", tmp_path, records="data.items", paginate={"kind": "page"})
    pd.testing.assert_frame_equal(df, _expected())
    assert api.requests["/items"] - before == 4  # 50 + 50 + 20 + the empty page


def test_next_link_in_the_body(api: Api, tmp_path: Path) -> None:
    df = _read(api, "/link", tmp_path, records="items", paginate={"kind": "link", "next": "links.next"})
    pd.testing.assert_frame_equal(df, _expected())


def test_next_link_in_the_link_header(api: Api, tmp_path: Path) -> None:
    df = _read(api, "/linkheader", tmp_path, paginate={"kind": "link"})  # records: the answer is the list
    pd.testing.assert_frame_equal(df, _expected())


def test_cursor(api: Api, tmp_path: Path) -> None:
    df = _read(api, "/cursor", tmp_path, paginate={"kind": "cursor", "next": "meta.next_cursor"})
    pd.testing.assert_frame_equal(df, _expected())  # records: the answer's only list


def test_params_and_headers_from_the_environment(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", TOKEN)
    df = _read(api, "/secure", tmp_path, records="data.items", params={"per_page": 1000},
               headers={"Authorization": "Bearer ${API_TOKEN}"})
    assert len(df) == len(RECORDS)
    assert api.headers_seen[-1]["Authorization"] == f"Bearer {TOKEN}"


def test_wrong_credentials_fail_at_once_without_retry(api: Api, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", "wrong-token-value")
    before = api.requests["/secure"]
    with pytest.raises(SourceError, match=r"HTTP 401.*credentials were refused") as err:
        _read(api, "/secure", tmp_path, records="data.items", headers={"Authorization": "Bearer ${API_TOKEN}"})
    assert api.requests["/secure"] - before == 1
    assert "wrong-token-value" not in str(err.value) and "not retried" in (err.value.hint or "")


def test_a_secret_in_the_query_is_masked_in_messages(api: Api, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "key-5f0c2a")
    with pytest.raises(SourceError) as err:
        _read(api, "/503", tmp_path, params={"api_key": "${API_KEY}"}, retries=0)
    assert "api_key=${API_KEY}" in str(err.value) and "key-5f0c2a" not in str(err.value)
    assert Fetcher(secrets=("key-5f0c2a",)).redact("GET /x?api_key=key-5f0c2a") == "GET /x?api_key=***"


def test_no_log_line_holds_a_secret(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    caplog: pytest.LogCaptureFixture) -> None:
    """httpx logs every URL it requests at INFO: a secret in the query is masked there too."""
    monkeypatch.setenv("API_KEY", "key-77d1e0")
    with caplog.at_level(logging.DEBUG):
        _read(api, "/items", tmp_path, records="data.items", params={"api_key": "${API_KEY}"})
    assert "api_key=***" in caplog.text and "key-77d1e0" not in caplog.text


def test_a_missing_environment_variable_is_named(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN_SET", raising=False)
    with pytest.raises(SourceError, match=r"NO_SUCH_TOKEN_SET is not set \(used in data.source.headers.X-Token\)"):
        _read(api, "/secure", tmp_path, headers={"X-Token": "${NO_SUCH_TOKEN_SET}"})


def test_429_waits_for_retry_after_then_succeeds(api: Api, tmp_path: Path) -> None:
    df = _read(api, "/429", tmp_path, records="data.items")
    assert len(df) == len(RECORDS) and api.requests["/429"] == 2
    first, second = api.times["/429"][:2]
    assert second - first >= 0.9  # Retry-After: 1 honoured (not the 10 ms backoff)


def test_a_retry_after_beyond_max_wait_gives_up_at_once(api: Api, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"failed: HTTP 429 Too Many Requests") as err:
        _read(api, "/429long", tmp_path)
    assert api.requests["/429long"] == 1
    assert "asks to wait 120s, more than retries.max_wait (30s)" in (err.value.hint or "")


def test_500_is_retried_then_succeeds(api: Api, tmp_path: Path) -> None:
    df = _read(api, "/500", tmp_path, records="data.items")
    assert len(df) == len(RECORDS) and api.requests["/500"] == 2


def test_retries_are_bounded(api: Api, tmp_path: Path) -> None:
    before = api.requests["/503"]
    with pytest.raises(SourceError, match=r"failed after 3 tries: HTTP 503"):
        _read(api, "/503", tmp_path)
    assert api.requests["/503"] - before == 3  # the first try and retries.attempts: 2


def test_retry_budget_across_pages(api: Api, tmp_path: Path) -> None:
    before = api.requests["/503"]
    with pytest.raises(SourceError, match=r"HTTP 503"):
        _read(api, "/503", tmp_path, retries={"attempts": 5, "budget": 1, "backoff": "10ms"})
    assert api.requests["/503"] - before == 2


def test_a_slow_answer_times_out(api: Api, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"failed after 2 tries: no answer within 0.2s"):
        _read(api, "/slow", tmp_path, timeout="200ms", retries={"attempts": 1, "backoff": "10ms"})


def test_a_refused_connection(tmp_path: Path) -> None:
    config = source_from_yaml({"http": f"http://127.0.0.1:{free_port()}/x", "retries": {"attempts": 1,
                                                                                         "backoff": "10ms"}})
    with pytest.raises(SourceError, match=r"failed after 2 tries: cannot connect") as err:
        read_source(config, base_dir=tmp_path)
    assert "\n" not in str(err.value)


def test_a_malformed_page_refuses_the_whole_read(api: Api, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"page 2 of .*/malformed is not valid JSON"):
        _read(api, "/malformed", tmp_path, records="data.items", paginate={"kind": "page"})


def test_html_is_refused(api: Api, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"answered HTML, not JSON"):
        _read(api, "/html", tmp_path)


def test_a_page_with_other_fields_is_refused(api: Api, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"page 2 of .* has different fields from page 1: missing \['color'\]; "
                                          r"extra \['colour'\]"):
        _read(api, "/shape", tmp_path, records="data.items", paginate={"kind": "page"})


def test_a_next_link_seen_twice_is_an_endless_loop(api: Api, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"endless pagination .* already read for page 2"):
        _read(api, "/loop", tmp_path, records="items", paginate={"kind": "link", "next": "links.next"})


def test_a_cursor_seen_twice_is_an_endless_loop(api: Api, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"page 2 gives the cursor 'c50', already read for page 2"):
        _read(api, "/cursorloop", tmp_path, paginate={"kind": "cursor", "next": "meta.next_cursor"})


def test_a_page_parameter_the_api_ignores_is_an_endless_loop(api: Api, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"page 2 is the same as page 1"):
        _read(api, "/same", tmp_path, records="data.items", paginate={"kind": "page"})


def test_max_pages_max_rows_and_max_bytes(api: Api, tmp_path: Path) -> None:
    paged = {"records": "data.items", "paginate": {"kind": "page"}}
    with pytest.raises(SourceError, match=r"more than max_pages \(2\) pages"):
        _read(api, "/items", tmp_path, max_pages=2, **paged)
    with pytest.raises(SourceError, match=r"more than max_rows \(60\) records by page 2"):
        _read(api, "/items", tmp_path, max_rows=60, **paged)
    with pytest.raises(SourceError, match=r"passed max_bytes \(4,000 bytes"):
        _read(api, "/items", tmp_path, max_bytes="4kB", **paged)


def test_records_not_found_and_no_records(api: Api, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"has no 'data.rows' \(data.source.records\)"):
        _read(api, "/items", tmp_path, records="data.rows")
    with pytest.raises(SourceError, match=r"cannot tell where the records are \(keys: data, page\)"):
        _read(api, "/items", tmp_path)
    with pytest.raises(EmptySourceError, match="returned no records"):
        _read(api, "/items", tmp_path, records="data.items", params={"page": 99})


def test_a_next_link_to_another_host_is_refused(tmp_path: Path) -> None:
    # the Link header of /linkheader names api.url; served under another name for the host, it is foreign
    with serve(RECORDS) as other:
        config = source_from_yaml({"http": other.url.replace("127.0.0.1", "localhost") + "/linkheader",
                                   "paginate": {"kind": "link"}, **FAST})
        with pytest.raises(SourceError, match=r"links to another host \(http://127.0.0.1:\d+\)"):
            read_source(config, base_dir=tmp_path)


def test_plain_file_urls_need_no_extra_package(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # as on a default install: neither of the packages fsspec's HTTP filesystem needs can be imported
    for name in ("aiohttp", "requests"):
        monkeypatch.setitem(sys.modules, name, None)
    want = pd.DataFrame(RECORDS)
    csv = read_source(api.url + "/data/file.csv", base_dir=tmp_path)
    assert csv["id"].tolist() == want["id"].tolist() and len(csv.columns) == 4
    parquet = read_source(api.url + "/data/file.parquet?version=2", base_dir=tmp_path)
    assert parquet["color"].tolist() == want["color"].tolist()
    with pytest.raises(SourceError, match=r"login.csv answered an HTML page, not the data file"):
        read_source(api.url + "/data/login.csv", base_dir=tmp_path)
    with pytest.raises(SourceError, match=r"HTTP 404 Not Found"):
        read_source(api.url + "/data/gone.csv", base_dir=tmp_path)


def test_a_json_api_url_as_text_says_to_write_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no source can read .*a JSON API \(source: \{http: URL"):
        read_source("https://api.example.com/v1/items", base_dir=tmp_path)


def test_real_data_served_as_records_comes_back_whole(tmp_path: Path) -> None:
    """sklearn's wine data (178 real wines), served 25 records a page, read back equal to the source."""
    wine = load_wine(as_frame=True).frame
    with serve(wine.to_dict("records"), page_size=25) as server:
        config = HttpSourceSpec(http=server.url + "/cursor", paginate={"kind": "cursor", "next": "meta.next_cursor"},
                                retries=FAST["retries"])
        df = read_source(config, base_dir=tmp_path)
        assert server.requests["/cursor"] == 8  # ceil(178 / 25)
    pd.testing.assert_frame_equal(df, wine, check_dtype=False)
    assert df["target"].value_counts().to_dict() == wine["target"].value_counts().to_dict()


def test_a_columns_type_does_not_depend_on_where_the_pages_break(tmp_path: Path) -> None:
    # a field null on every record of one page: one table of all the records (floats with gaps), as
    # json_normalize of them all gives it, not a page of nulls concatenated to a page of floats (an object column)
    records = [{"id": i, "reading": {"temp": None if 50 <= i < 100 else i / 4}} for i in range(120)]
    with serve(records, page_size=50) as server:
        df = _read(server, "/link", tmp_path, records="items", paginate={"kind": "link", "next": "links.next"})
    pd.testing.assert_frame_equal(df, pd.json_normalize(records))
    assert df["reading.temp"].dtype == "float64" and df["reading.temp"].isna().sum() == 50
