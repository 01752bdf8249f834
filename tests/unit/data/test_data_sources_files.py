"""The built-in file sources: CSV, Parquet, JSON lines, globs; local and fsspec URLs; every error."""

from __future__ import annotations

import gzip
import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from tidal.core.errors import SourceError
from tidal.data.sources import EmptySourceError, get_source, read_source, resolve_source

ELEC2_DIR = Path(__file__).resolve().parents[3] / "examples" / "elec2"
FRAME = pd.DataFrame({"x": [1.5, 2.5, 3.5], "n": [1, 2, 3], "s": ["a", "b", "c"]})


def _csv(path: Path, df: pd.DataFrame = FRAME) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


@pytest.fixture
def memfs() -> Iterator[tuple[fsspec.AbstractFileSystem, str]]:
    """fsspec's in-memory filesystem and a fresh folder in it (the filesystem is process-wide)."""
    fs = fsspec.filesystem("memory")
    root = f"/tidal-test-{uuid.uuid4().hex}"
    fs.mkdir(root)
    yield fs, root
    fs.rm(root, recursive=True)


# -- reading each format --------------------------------------------------------------------------


def test_elec2_csv_gz_reads_all_rows() -> None:
    df = read_source("data/elec2.csv.gz", base_dir=ELEC2_DIR)
    assert df.shape == (45312, 7)
    assert list(df.columns) == ["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer", "up"]
    assert str(df["up"].dtype) == "int64"
    assert isinstance(df.index, pd.RangeIndex)


def test_csv_relative_to_base_dir_and_absolute(tmp_path: Path) -> None:
    path = _csv(tmp_path / "data" / "t.csv")
    relative = read_source("data/t.csv", base_dir=tmp_path)
    absolute = read_source(str(path), base_dir="/somewhere/else")
    pd.testing.assert_frame_equal(relative, FRAME)
    pd.testing.assert_frame_equal(absolute, FRAME)


def test_csv_gz_and_tsv(tmp_path: Path) -> None:
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(FRAME.to_csv(index=False).encode()))
    FRAME.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    pd.testing.assert_frame_equal(read_source("t.csv.gz", base_dir=tmp_path), FRAME)
    pd.testing.assert_frame_equal(read_source("t.tsv", base_dir=tmp_path), FRAME)


def test_csv_extension_is_case_insensitive(tmp_path: Path) -> None:
    _csv(tmp_path / "T.CSV")
    pd.testing.assert_frame_equal(read_source("T.CSV", base_dir=tmp_path), FRAME)


def test_parquet(tmp_path: Path) -> None:
    FRAME.to_parquet(tmp_path / "t.parquet", index=False)
    pd.testing.assert_frame_equal(read_source("t.parquet", base_dir=tmp_path), FRAME)


def test_parquet_named_index_comes_back_as_a_column(tmp_path: Path) -> None:
    FRAME.set_index("n").to_parquet(tmp_path / "t.parquet")
    df = read_source("t.parquet", base_dir=tmp_path)
    assert list(df.columns) == ["n", "x", "s"]
    assert isinstance(df.index, pd.RangeIndex)


def test_parquet_sliced_frame_gets_a_fresh_index(tmp_path: Path) -> None:
    FRAME.iloc[1:].to_parquet(tmp_path / "t.parquet")
    df = read_source("t.parquet", base_dir=tmp_path)
    assert list(df.index) == [0, 1]
    assert list(df.columns) == ["x", "n", "s"]


@pytest.mark.parametrize("name", ["t.jsonl", "t.ndjson", "t.jsonl.gz", "t.ndjson.gz"])
def test_json_lines(tmp_path: Path, name: str) -> None:
    text = FRAME.to_json(orient="records", lines=True)
    data = gzip.compress(text.encode()) if name.endswith(".gz") else text.encode()
    (tmp_path / name).write_bytes(data)
    pd.testing.assert_frame_equal(read_source(name, base_dir=tmp_path), FRAME)


def test_json_lines_keeps_quoted_numbers_as_text(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"zip": "01234", "v": 1}\n{"zip": "98765", "v": null}\n')
    df = read_source("t.jsonl", base_dir=tmp_path)
    assert list(df["zip"]) == ["01234", "98765"]
    assert df["v"].isna().tolist() == [False, True]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_fsspec_memory_urls(memfs: tuple[fsspec.AbstractFileSystem, str], fmt: str) -> None:
    fs, root = memfs
    path = f"{root}/t.{fmt}"
    with fs.open(path, "wb") as fh:
        if fmt == "csv":
            fh.write(FRAME.to_csv(index=False).encode())
        elif fmt == "parquet":
            FRAME.to_parquet(fh, index=False)
        else:
            fh.write(FRAME.to_json(orient="records", lines=True).encode())
    df = read_source(f"memory://{path}", base_dir="/unused")
    pd.testing.assert_frame_equal(df, FRAME)


def test_fsspec_memory_missing_file(memfs: tuple[fsspec.AbstractFileSystem, str]) -> None:
    uri = f"memory://{memfs[1]}/nope.csv"
    with pytest.raises(SourceError, match=r"data file not found: memory://.*nope\.csv — check data.source"):
        read_source(uri, base_dir="/unused")


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_s3_without_s3fs_says_what_to_install() -> None:
    with pytest.raises(SourceError, match=r"pip install 'tidal\[s3\]'"):
        read_source("s3://bucket/data.csv", base_dir="/unused")


# -- globs ----------------------------------------------------------------------------------------


def test_glob_concatenates_in_sorted_path_order(tmp_path: Path) -> None:
    _csv(tmp_path / "data" / "b.csv", FRAME.iloc[1:])
    _csv(tmp_path / "data" / "a.csv", FRAME.iloc[:1])
    _csv(tmp_path / "data" / "c.csv", FRAME.iloc[2:].assign(x=9.5))
    (tmp_path / "data" / "notes.txt").write_text("not matched")
    df = read_source("data/*.csv", base_dir=tmp_path)
    assert df["x"].tolist() == [1.5, 2.5, 3.5, 9.5]
    assert isinstance(df.index, pd.RangeIndex)
    assert resolve_source("data/*.csv").name == "glob"


def test_glob_reorders_columns_like_the_first_file(tmp_path: Path) -> None:
    _csv(tmp_path / "a.csv", FRAME)
    _csv(tmp_path / "b.csv", FRAME[["s", "x", "n"]])
    df = read_source("*.csv", base_dir=tmp_path)
    assert list(df.columns) == ["x", "n", "s"]
    assert df["s"].tolist() == ["a", "b", "c", "a", "b", "c"]


def test_glob_different_columns_names_the_file(tmp_path: Path) -> None:
    _csv(tmp_path / "data" / "a.csv")
    _csv(tmp_path / "data" / "b.csv", FRAME.rename(columns={"s": "label"}))
    with pytest.raises(SourceError) as info:
        read_source("data/*.csv", base_dir=tmp_path)
    message = str(info.value)
    first, other = tmp_path / "data" / "a.csv", tmp_path / "data" / "b.csv"
    assert f"{other} has different columns from {first}" in message
    assert "missing ['s']" in message and "extra ['label']" in message


def test_glob_matching_nothing(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no files match .*data/\*\.csv — check data.source in tidal.yaml"):
        read_source("data/*.csv", base_dir=tmp_path)


def test_glob_skips_empty_parts_but_not_all(tmp_path: Path) -> None:
    _csv(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("x,n,s\n")
    (tmp_path / "c.csv").write_bytes(b"")
    assert len(read_source("*.csv", base_dir=tmp_path)) == 3
    (tmp_path / "a.csv").write_text("x,n,s\n")
    with pytest.raises(EmptySourceError, match="is empty: no rows"):
        read_source("*.csv", base_dir=tmp_path)


def test_glob_of_mixed_formats_and_recursive(tmp_path: Path) -> None:
    _csv(tmp_path / "d" / "2024" / "a.csv")
    (tmp_path / "d" / "2025").mkdir()
    FRAME.to_parquet(tmp_path / "d" / "2025" / "b.parquet", index=False)
    df = read_source("d/**/*.*", base_dir=tmp_path)
    assert len(df) == 6


def test_glob_over_an_unsupported_file_lists_formats(tmp_path: Path) -> None:
    _csv(tmp_path / "a.csv")
    (tmp_path / "b.xlsx").write_bytes(b"xx")
    with pytest.raises(SourceError, match=r"unknown file extension '\.xlsx'"):
        read_source("*", base_dir=tmp_path)


def test_glob_on_fsspec_memory(memfs: tuple[fsspec.AbstractFileSystem, str]) -> None:
    fs, root = memfs
    for name, part in (("b", FRAME.iloc[1:]), ("a", FRAME.iloc[:1])):
        with fs.open(f"{root}/{name}.csv", "wb") as fh:
            fh.write(part.to_csv(index=False).encode())
    df = read_source(f"memory://{root}/*.csv", base_dir="/unused")
    pd.testing.assert_frame_equal(df, FRAME)


# -- errors ---------------------------------------------------------------------------------------


def test_missing_file_message(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        read_source("data/nope.csv", base_dir=tmp_path)
    expected = f"data file not found: {tmp_path / 'data' / 'nope.csv'} — check data.source in tidal.yaml"
    assert str(info.value) == expected


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "data.csv").mkdir()
    with pytest.raises(SourceError, match=r"is a folder, not a file — use a glob such as data\.csv/\*\.csv"):
        read_source("data.csv", base_dir=tmp_path)


def test_unknown_extension_lists_the_supported_ones(tmp_path: Path) -> None:
    (tmp_path / "t.xlsx").write_bytes(b"x")
    with pytest.raises(SourceError) as info:
        read_source("t.xlsx", base_dir=tmp_path)
    message = str(info.value)
    assert "unknown file extension '.xlsx'" in message
    for ext in (".csv", ".csv.gz", ".parquet", ".jsonl", ".ndjson", "SQLAlchemy URL", "glob"):
        assert ext in message


def test_unknown_url_scheme(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no source can read 'nosuch://x'"):
        read_source("nosuch://x", base_dir=tmp_path)


@pytest.mark.parametrize("name", ["t.csv", "t.parquet", "t.jsonl", "t.csv.gz"])
def test_zero_byte_file_has_no_rows(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(EmptySourceError, match=r"data file .* has no rows"):
        read_source(name, base_dir=tmp_path)


def test_header_only_csv_has_no_rows(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b,c\n")
    with pytest.raises(SourceError) as info:
        read_source("t.csv", base_dir=tmp_path)
    assert str(info.value) == f"data file {tmp_path / 't.csv'} has no rows — check data.source in tidal.yaml"


def test_gzip_of_nothing_has_no_rows(tmp_path: Path) -> None:
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(EmptySourceError, match="has no rows"):
        read_source("t.csv.gz", base_dir=tmp_path)


def test_zero_row_parquet_has_no_rows(tmp_path: Path) -> None:
    FRAME.iloc[:0].to_parquet(tmp_path / "t.parquet")
    with pytest.raises(EmptySourceError, match="has no rows"):
        read_source("t.parquet", base_dir=tmp_path)


def test_unparseable_csv(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(SourceError) as info:
        read_source("t.csv", base_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(f"cannot parse CSV {tmp_path / 't.csv'}: ")
    assert "line 3" in message and "check the delimiter" in message
    assert "\n" not in message


def test_csv_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes("name\nZürich\n".encode("utf-16"))
    with pytest.raises(SourceError, match=r"is not UTF-8 text .* — save the file as UTF-8"):
        read_source("t.csv", base_dir=tmp_path)


def test_gz_that_is_not_gzip(tmp_path: Path) -> None:
    (tmp_path / "t.csv.gz").write_text("a,b\n1,2\n")
    with pytest.raises(SourceError, match=r"cannot read .*t\.csv\.gz: .*gzip"):
        read_source("t.csv.gz", base_dir=tmp_path)


def test_corrupt_parquet(tmp_path: Path) -> None:
    (tmp_path / "t.parquet").write_text("a,b\n1,2\n")
    with pytest.raises(SourceError, match=r"cannot read .*t\.parquet: .* — check that the file is a"):
        read_source("t.parquet", base_dir=tmp_path)


def test_bad_json_line_is_named(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"a": 1}\n{"a": 2}\n{"a": 3,,}\n')
    with pytest.raises(SourceError, match=r"cannot parse JSON lines .*t\.jsonl: line 3: .* — each line must"):
        read_source("t.jsonl", base_dir=tmp_path)


def test_json_line_that_is_not_an_object(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(SourceError, match="line 2: expected a JSON object, got list"):
        read_source("t.jsonl", base_dir=tmp_path)


def test_a_query_for_a_file_is_refused(tmp_path: Path) -> None:
    _csv(tmp_path / "t.csv")
    with pytest.raises(SourceError, match=r"a query is only for SQL sources — remove data\.query"):
        read_source("t.csv", base_dir=tmp_path, query="SELECT 1")
    with pytest.raises(SourceError, match="a query is only for SQL sources"):
        read_source("*.csv", base_dir=tmp_path, query="SELECT 1")


def test_empty_uri(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"data\.source is empty"):
        read_source("  ", base_dir=tmp_path)


def test_can_read_is_by_extension() -> None:
    csv, glob = get_source("csv"), get_source("glob")
    assert csv.can_read("a/b.csv") and csv.can_read("s3://b/x.csv.gz") and csv.can_read("https://h/x.csv?t=1")
    assert not csv.can_read("a/*.csv") and not csv.can_read("sqlite:///x.csv")
    assert not csv.can_read("x.parquet")
    assert glob.can_read("a/*.csv") and glob.can_read("memory://x/part-?.parquet")
    assert not glob.can_read("sqlite:///x.db?query=SELECT * FROM t")


# -- CSV read in chunks, and read again in one pass where the chunks disagree ---------------------

CHUNKED_ROWS = 300_000  # more than one of pandas' low_memory chunks


def _every_kind(n: int) -> pd.DataFrame:
    import numpy as np

    i = np.arange(n)
    count = pd.array(i % 1000, dtype="Int64")
    count[i % 17 == 0] = pd.NA
    ok = pd.array(i % 3 == 0, dtype="boolean")
    ok[i % 29 == 0] = pd.NA
    return pd.DataFrame({
        "id": i,
        "name": np.char.add("user-", i.astype(str)),
        "site": np.array(["north", "south", "east"])[i % 3],  # a category, as text
        "count": count,  # a nullable int: floats with gaps in a CSV
        "flag": i % 2 == 0,
        "ok": ok,  # booleans with gaps
        "temp": np.where(i % 11 == 0, np.nan, i / 7),
        "at": pd.Timestamp("2026-01-01") + pd.to_timedelta(i, unit="s"),  # times: text in a CSV
        "at_utc": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(i, unit="s"),
    })


def test_a_csv_read_in_chunks_is_the_frame_of_one_pass(tmp_path: Path) -> None:
    path = _csv(tmp_path / "kinds.csv", _every_kind(CHUNKED_ROWS))
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = read_source(str(path), base_dir=tmp_path)
    one_pass = pd.read_csv(path, low_memory=False)
    pd.testing.assert_frame_equal(got, one_pass)
    assert [str(t) for t in got.dtypes] == ["int64", "str", "str", "float64", "bool", "object", "float64", "str",
                                            "str"]
    assert not [w for w in caught if issubclass(w.category, pd.errors.DtypeWarning)]


def test_a_csv_whose_chunks_disagree_is_read_again_in_one_pass(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # numbers in the first chunk, text in a later one: pandas' chunks would give an object column mixing ints and
    # strs (and a DtypeWarning); one pass gives text throughout, as before
    n = CHUNKED_ROWS
    df = pd.DataFrame({"code": [str(i) for i in range(n - 5)] + ["x-1"] * 5, "v": range(n)})
    path = _csv(tmp_path / "mixed.csv", df)
    calls: list[object] = []
    read_csv = pd.read_csv

    def spy(*args: object, **kwargs: object) -> pd.DataFrame:
        calls.append(kwargs.get("low_memory", True))
        return read_csv(*args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", spy)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = read_source(str(path), base_dir=tmp_path)
    monkeypatch.undo()
    assert calls == [True, False]  # in chunks, then again in one pass
    pd.testing.assert_frame_equal(got, pd.read_csv(path, low_memory=False))
    assert str(got["code"].dtype) == "str" and got["code"].iloc[0] == "0"
    assert not [w for w in caught if issubclass(w.category, pd.errors.DtypeWarning)]
