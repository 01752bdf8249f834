"""The source table: registration, resolution, entry-point plugins, the contract and check_source."""

from __future__ import annotations

import inspect
import re
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

import tidal.data.sources.registry as registry
from tidal.core.errors import PluginNotFound, SourceError
from tidal.data.sources import (
    EmptySourceError,
    Source,
    SourceCheckFailed,
    check_source,
    get_source,
    known_sources,
    read_source,
    register_source,
    resolve_local_path,
    resolve_source,
    unregister_source,
)
from tidal.data.sources.checks import missing_variant

FRAME = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})


@pytest.fixture(autouse=True)
def _clean_table() -> Iterator[None]:
    registry.reset_sources()
    yield
    registry.reset_sources()


class MemorySource(Source):
    """A test source: ``mem://NAME`` reads a frame from a dict."""

    name = "mem"
    formats = ("mem://NAME",)
    tables: dict[str, pd.DataFrame] = {"prices": FRAME}

    def can_read(self, uri: str) -> bool:
        return isinstance(uri, str) and uri.startswith("mem://")

    def read(self, uri: str, *, base_dir: Path, query: str | None = None) -> pd.DataFrame:
        try:
            return self.tables[uri.removeprefix("mem://")].copy()
        except KeyError:
            raise SourceError(f"no table {uri}", hint="check data.source") from None


def test_builtins_and_their_order() -> None:
    assert known_sources() == ["sql", "images", "glob", "csv", "parquet", "jsonl", "http", "redis"]


def test_get_source_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(PluginNotFound) as info:
        get_source("parket")
    assert info.value.known == ["csv", "glob", "http", "images", "jsonl", "parquet", "redis", "sql"]
    assert "did you mean 'parquet'?" in str(info.value)


def test_register_as_decorator_and_resolve() -> None:
    returned = register_source(MemorySource)
    assert returned is MemorySource
    assert resolve_source("mem://prices").name == "mem"
    assert known_sources()[0] == "mem"
    pd.testing.assert_frame_equal(read_source("mem://prices", base_dir="."), FRAME)
    unregister_source("mem")
    with pytest.raises(SourceError, match="no source can read 'mem://prices'"):
        resolve_source("mem://prices")


def test_a_later_source_takes_over_a_uri() -> None:
    class LoudCsv(Source):
        name = "loud-csv"

        def can_read(self, uri: str) -> bool:
            return uri.endswith(".csv")

        def read(self, uri: str, *, base_dir: Path, query: str | None = None) -> pd.DataFrame:
            return FRAME

    register_source(LoudCsv())
    assert resolve_source("x.csv").name == "loud-csv"
    assert resolve_source("x.parquet").name == "parquet"


def test_same_name_replaces() -> None:
    class OtherCsv(MemorySource):
        name = "csv"

    register_source(OtherCsv)
    assert isinstance(get_source("csv"), OtherCsv)
    assert known_sources().count("csv") == 1


def test_register_refuses_non_sources() -> None:
    with pytest.raises(TypeError, match=r"is not a tidal\.data\.sources\.Source"):
        register_source(object())  # type: ignore[call-overload]

    class Nameless(MemorySource):
        name = ""

    with pytest.raises(TypeError, match="name must be a non-empty string"):
        register_source(Nameless)


def test_unknown_uri_lists_registered_formats() -> None:
    register_source(MemorySource)
    with pytest.raises(SourceError, match=r"supported: mem://NAME, a SQLAlchemy URL"):
        resolve_source("x.xlsx")


def test_entry_point_plugins_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = SimpleNamespace(name="mem", value="tests:MemorySource", load=lambda: MemorySource)
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda group: [ep])
    registry.reset_sources()
    assert resolve_source("mem://prices").name == "mem"


def test_a_broken_plugin_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> Any:
        raise ImportError("No module named 'tidal_fancy'")

    ep = SimpleNamespace(name="fancy", value="tidal_fancy:FancySource", load=boom)
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda group: [ep])
    registry.reset_sources()
    with pytest.raises(SourceError, match=r"cannot load source plugin 'fancy' \(tidal_fancy:FancySource\)"):
        resolve_source("x.csv")


def test_read_source_by_name(tmp_path: Path) -> None:
    FRAME.to_csv(tmp_path / "data.txt", index=False)  # an extension no source claims
    pd.testing.assert_frame_equal(read_source("data.txt", base_dir=tmp_path, source="csv"), FRAME)
    with pytest.raises(PluginNotFound):
        read_source("data.txt", base_dir=tmp_path, source="excel")


# -- read_source holds plugins to the contract -----------------------------------------------------


def _plugin(result: Any = None, error: Exception | None = None) -> Source:
    class Plugin(Source):
        name = "plugin"

        def can_read(self, uri: str) -> bool:
            return uri.startswith("plugin://")

        def read(self, uri: str, *, base_dir: Path, query: str | None = None) -> pd.DataFrame:
            if error is not None:
                raise error
            return result

    return register_source(Plugin())


def test_a_plugins_raw_exception_becomes_a_source_error() -> None:
    _plugin(error=KeyError("boom"))
    with pytest.raises(SourceError, match="source 'plugin' failed to read 'plugin://x': KeyError: 'boom'"):
        read_source("plugin://x", base_dir=".")


def test_a_plugin_must_return_a_dataframe() -> None:
    _plugin(result=[1, 2])
    with pytest.raises(SourceError, match="returned list, not a pandas DataFrame"):
        read_source("plugin://x", base_dir=".")


def test_a_plugin_must_return_string_column_names() -> None:
    _plugin(result=pd.DataFrame({0: [1], "a": [2]}))
    with pytest.raises(SourceError, match=r"non-string column names \[0\]"):
        read_source("plugin://x", base_dir=".")


def test_a_plugin_returning_no_rows() -> None:
    _plugin(result=FRAME.iloc[:0])
    with pytest.raises(EmptySourceError, match="has no rows"):
        read_source("plugin://x", base_dir=".")


def test_read_source_gives_a_fresh_index() -> None:
    _plugin(result=FRAME.set_axis([10, 20]))
    assert list(read_source("plugin://x", base_dir=".").index) == [0, 1]


# -- check_source ----------------------------------------------------------------------------------


def test_builtin_sources_pass_the_conformance_check(tmp_path: Path) -> None:
    FRAME.to_csv(tmp_path / "t.csv", index=False)
    FRAME.to_parquet(tmp_path / "t.parquet")
    (tmp_path / "t.jsonl").write_text(FRAME.to_json(orient="records", lines=True))
    (tmp_path / "parts").mkdir()
    FRAME.to_csv(tmp_path / "parts" / "a.csv", index=False)
    with sqlite3.connect(tmp_path / "t.db") as conn:
        FRAME.to_sql("t", conn, index=False)
    for name, uri in (("csv", "t.csv"), ("parquet", "t.parquet"), ("jsonl", "t.jsonl"),
                      ("glob", "parts/*.csv"), ("sql", "sqlite:///t.db?query=SELECT%20*%20FROM%20t")):
        df = check_source(get_source(name), uri, tmp_path)
        assert len(df) == 2


def test_a_custom_source_passes(tmp_path: Path) -> None:
    check_source(MemorySource(), "mem://prices", tmp_path)


def test_check_source_catches_a_raw_exception_on_missing_input(tmp_path: Path) -> None:
    class Leaky(MemorySource):
        def read(self, uri: str, *, base_dir: Path, query: str | None = None) -> pd.DataFrame:
            return self.tables[uri.removeprefix("mem://")]  # KeyError on a missing table

    with pytest.raises(SourceCheckFailed, match=r"missing input raised KeyError, not SourceError"):
        check_source(Leaky(), "mem://prices", tmp_path)


def test_check_source_catches_can_read_that_raises(tmp_path: Path) -> None:
    class Fragile(MemorySource):
        def can_read(self, uri: str) -> bool:
            return uri.split("://")[1] != ""  # IndexError on "x"

    with pytest.raises(SourceCheckFailed, match=r"can_read\(.*\) raised IndexError"):
        check_source(Fragile(), "mem://prices", tmp_path)


def test_check_source_catches_bad_columns_and_empty_frames(tmp_path: Path) -> None:
    class IntColumns(MemorySource):
        tables = {"prices": pd.DataFrame({0: [1]})}

    class Empty(MemorySource):
        tables = {"prices": FRAME.iloc[:0]}

    with pytest.raises(SourceCheckFailed, match="column names must be str"):
        check_source(IntColumns(), "mem://prices", tmp_path)
    with pytest.raises(SourceCheckFailed, match="returned no rows"):
        check_source(Empty(), "mem://prices", tmp_path)


def test_missing_variant() -> None:
    assert missing_variant("data/x.csv") == "data/tidal-missing-x.csv"
    assert missing_variant("x.csv") == "tidal-missing-x.csv"
    assert missing_variant("mem://prices") == "mem://tidal-missing-prices"


def test_resolve_local_path(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("a\n1\n")
    assert resolve_local_path("a.csv", tmp_path) == tmp_path / "a.csv"
    with pytest.raises(SourceError, match="data file not found"):
        resolve_local_path("b.csv", tmp_path)
    assert resolve_local_path("b.csv", tmp_path, must_exist=False) == tmp_path / "b.csv"


# -- the worked example in Source's docstring runs as written --------------------------------------


def _docstring_blocks() -> list[str]:
    """The literal blocks (after a line ending in '::') of Source's docstring, dedented."""
    blocks: list[list[str]] = []
    inside = False
    for line in (inspect.getdoc(Source) or "").splitlines():
        if inside and line.strip() and not line.startswith("    "):
            inside = False
        if inside:
            blocks[-1].append(line)
        elif line.rstrip().endswith("::"):
            inside = True
            blocks.append([])
    return [textwrap.dedent("\n".join(block)).strip("\n") for block in blocks]


def test_the_docstring_example_works(tmp_path: Path) -> None:
    code, entry_point, yaml_text, test_code = _docstring_blocks()
    assert 'fwf = "my_tidal_fwf:FixedWidthSource"' in entry_point
    namespace: dict[str, Any] = {}
    exec(compile(code, "<Source docstring>", "exec"), namespace)
    exec(compile(test_code, "<Source docstring test>", "exec"), namespace)
    namespace["test_fwf_source"](tmp_path)

    source_line = next(line for line in yaml_text.splitlines() if "source:" in line)
    uri = re.search(r"source:\s*(\S+)", source_line).group(1)  # type: ignore[union-attr]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "prices.fwf").write_text("t    price\n1    0.5\n2    0.7\n")
    assert resolve_source(uri).name == "fwf"
    df = read_source(uri, base_dir=tmp_path)
    assert df.to_dict("list") == {"t": [1, 2], "price": [0.5, 0.7]}
