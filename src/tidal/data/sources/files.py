"""Built-in file sources: CSV, Parquet, JSON lines, and globs of them.

Local paths are relative to the project folder (``base_dir``); any fsspec URL (``memory://``,
``s3://``, ``gs://``) works too, given the fsspec implementation for it (``s3fs`` ...). An ``http://``
or ``https://`` file URL is downloaded with httpx (:mod:`tidal.data.sources.fetch`), from the default install.
A ``.gz`` suffix means gzip for the text formats. Every failure is a ``SourceError`` naming the file.
"""

from __future__ import annotations

import glob as globlib
import gzip
import io
import json
import re
import warnings
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.spec import AbstractFileSystem

from tidal.core.errors import SourceError, TidalError
from tidal.data.sources.base import SPEC_HINT, EmptySourceError, Source, resolve_local_path, url_scheme
from tidal.data.sources.fetch import Fetcher
from tidal.data.sources.sql import mask_password

_GLOB_CHARS = re.compile(r"[*?\[]")
#: The most a file URL may download (the whole file is held in memory to be parsed).
_MAX_DOWNLOAD = 4 * 2**30
# fsspec protocols that need a package fsspec does not bring, and the install command for them.
_FSSPEC_EXTRAS = {
    "s3": "pip install 'tidal[s3]'",
    "s3a": "pip install 'tidal[s3]'",
    "gs": "pip install gcsfs",
    "gcs": "pip install gcsfs",
    "az": "pip install adlfs",
    "abfs": "pip install adlfs",
}


def is_file_uri(uri: str) -> bool:
    """Whether ``uri`` is a local path or a URL with an fsspec protocol (not, say, a SQL URL)."""
    scheme = url_scheme(uri)
    return scheme is None or scheme in fsspec.available_protocols()


def _path_part(uri: str) -> str:
    # An HTTP query string or fragment is not part of the file name; elsewhere '?' is a glob character.
    return re.split(r"[?#]", uri, maxsplit=1)[0] if url_scheme(uri) in ("http", "https") else uri


@dataclass(frozen=True)
class _Location:
    """A file found: the filesystem that holds it, its path there, and how to name it to a user; or, for
    a file downloaded over HTTP, its bytes (``fs`` is then None)."""

    fs: AbstractFileSystem | None
    path: str
    display: str
    data: bytes | None = None

    def open(self) -> IO[bytes]:
        if self.fs is None:
            return io.BytesIO(self.data or b"")
        return self.fs.open(self.path, "rb")  # type: ignore[no-any-return]

    def size(self) -> int | None:
        if self.fs is None:
            return len(self.data or b"")
        try:
            return int(self.fs.size(self.path))
        except Exception:  # some backends cannot tell; the parser will find out
            return None


def _download(uri: str) -> _Location:
    """A file URL (``https://host/data.csv``) read with httpx into memory.

    httpx is a base dependency, so file URLs work from the default install; fsspec's HTTP filesystem
    would need aiohttp (and its five compiled dependencies) for what is one GET here. The GET has a
    timeout, bounded retries on 429/5xx, and refuses an HTML page where a data file was expected.
    """
    with Fetcher(timeout=30.0, max_bytes=_MAX_DOWNLOAD, fix=SPEC_HINT) as fetcher:
        answer = fetcher.get(uri, shown=mask_password(uri))
    if answer.content_type in ("text/html", "application/xhtml+xml"):
        raise SourceError(f"{mask_password(uri)} answered an HTML page, not the data file (a login or error page?)",
                          hint="check the URL; a file on a web page needs its direct download link")
    return _Location(None, uri, mask_password(uri), answer.body)


def _filesystem(uri: str) -> tuple[AbstractFileSystem, str]:
    try:
        return fsspec.core.url_to_fs(uri)  # type: ignore[no-any-return]
    except ImportError as exc:  # s3fs, gcsfs ... not installed
        scheme = url_scheme(uri) or ""
        hint = _FSSPEC_EXTRAS.get(scheme, f"install the fsspec implementation for {scheme}://")
        raise SourceError(f"cannot open {uri}: {exc}", hint=hint) from exc
    except ValueError as exc:  # unknown protocol, malformed URL
        raise SourceError(f"cannot open {uri}: {exc}", hint=SPEC_HINT) from exc


def locate(uri: str, base_dir: Path | str) -> _Location:
    """Find the file ``uri`` (local, relative to ``base_dir``, or an fsspec URL) or raise ``SourceError``."""
    if url_scheme(uri) is None:
        local = resolve_local_path(uri, base_dir)
        if local.is_dir():
            raise SourceError(
                f"{local} is a folder, not a file", hint=f"use a glob such as {uri.rstrip('/')}/*.csv"
            )
        return _Location(fsspec.filesystem("file"), str(local), str(local))
    if url_scheme(uri) in ("http", "https"):
        return _download(uri)
    fs, path = _filesystem(uri)
    try:
        exists = fs.exists(path)
        is_dir = exists and fs.isdir(path)
    except Exception as exc:  # permissions, network: the backend's own message is the useful part
        raise SourceError(f"cannot access {uri}: {type(exc).__name__}: {exc}", hint=SPEC_HINT) from exc
    if not exists:
        raise SourceError(f"data file not found: {uri}", hint=SPEC_HINT)
    if is_dir:
        raise SourceError(
            f"{uri} is a folder, not a file", hint=f"use a glob such as {uri.rstrip('/')}/*.csv"
        )
    return _Location(fs, path, uri)


def _no_rows(display: str, why: str = "") -> EmptySourceError:
    return EmptySourceError(f"data file {display} has no rows{why}", hint=SPEC_HINT)


class FileSource(Source):
    """A single file chosen by extension; subclasses parse an open binary handle."""

    #: Lower-case suffixes this source claims; a ``.gz`` variant of each too when ``gzipped`` is set.
    extensions: tuple[str, ...] = ()
    gzipped: bool = True
    #: The fix printed with a parse error.
    fix: str = "check that the file is complete and in the format its extension says"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        gz = tuple(f"{e}.gz" for e in cls.extensions) if cls.gzipped else ()
        cls.formats = cls.extensions + gz

    def can_read(self, uri: str) -> bool:
        if not isinstance(uri, str) or not is_file_uri(uri):
            return False
        path = _path_part(uri)
        return not _GLOB_CHARS.search(path) and path.lower().endswith(self.formats)

    def read(self, uri: str, *, base_dir: Path, query: str | None = None) -> pd.DataFrame:
        if query is not None:
            raise SourceError(
                f"a query was given, but {uri!r} is a file: a query is only for SQL sources",
                hint="remove data.query from tidal.yaml",
            )
        where = locate(uri, base_dir)
        return self._read_location(where)

    def _read_location(self, where: _Location) -> pd.DataFrame:
        """Parse the located file, translating every library error into a ``SourceError``."""
        size = where.size()
        if size == 0:
            raise _no_rows(where.display, " (the file is empty, 0 bytes)")
        compression = "gzip" if _path_part(where.display).lower().endswith(".gz") else None
        try:
            with where.open() as handle:
                df = self.parse(handle, compression=compression, display=where.display)
        except TidalError:
            raise
        except pd.errors.EmptyDataError as exc:
            raise _no_rows(where.display, " (the file is empty)") from exc
        except UnicodeDecodeError as exc:
            raise SourceError(
                f"{where.display} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                hint="save the file as UTF-8",
            ) from exc
        except (OSError, EOFError, ValueError, pa.ArrowException) as exc:
            # gzip.BadGzipFile, truncated files, pandas and pyarrow parse errors.
            raise SourceError(f"cannot read {where.display}: {_one_line(exc)}", hint=self.fix) from exc
        if len(df) == 0:
            raise _no_rows(where.display)
        df.columns = [str(c) for c in df.columns]
        return df

    @abstractmethod
    def parse(self, handle: IO[bytes], *, compression: str | None, display: str) -> pd.DataFrame:
        """Parse an open binary file; library exceptions are translated by ``read``."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


class CsvSource(FileSource):
    """Comma-separated files (``.csv``), tab-separated (``.tsv``), optionally gzipped."""

    name = "csv"
    extensions = (".csv", ".tsv")
    fix = "check the delimiter (',' for .csv, a tab for .tsv) and the quoting on that line"

    def parse(self, handle: IO[bytes], *, compression: str | None, display: str) -> pd.DataFrame:
        sep = "\t" if _path_part(display).lower().removesuffix(".gz").endswith(".tsv") else ","
        try:
            return _read_csv(handle, sep=sep, compression=compression)
        except pd.errors.ParserError as exc:
            raise SourceError(f"cannot parse CSV {display}: {_one_line(exc)}", hint=self.fix) from exc


def _read_csv(handle: IO[bytes], *, sep: str, compression: str | None) -> pd.DataFrame:
    """The frame ``pandas.read_csv(..., low_memory=False)`` gives: each column's type inferred from all of it.

    pandas' default (``low_memory=True``) parses the file in chunks, which is faster (about a quarter on a
    file of readings) but infers a type per chunk; where the chunks disagree in a way that changes the
    result (numbers in one, text in another: an object column mixing both) it says so with a
    ``DtypeWarning``, and only there (chunks that disagree harmlessly, ints and floats, give the same floats
    as one pass). So the file is read in chunks, and read again in one pass when pandas warns; a handle that
    cannot be rewound is read in one pass from the start."""
    if not handle.seekable():
        return pd.read_csv(handle, sep=sep, compression=compression, low_memory=False)
    start = handle.tell()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.DtypeWarning)
        df = pd.read_csv(handle, sep=sep, compression=compression)
    mixed = any(issubclass(w.category, pd.errors.DtypeWarning) for w in caught)
    for other in caught:  # any other warning is pandas' to give, as before
        if not issubclass(other.category, pd.errors.DtypeWarning):
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    if not mixed:
        return df
    handle.seek(start)
    return pd.read_csv(handle, sep=sep, compression=compression, low_memory=False)


class ParquetSource(FileSource):
    """Apache Parquet files (``.parquet``)."""

    name = "parquet"
    extensions = (".parquet",)
    gzipped = False
    fix = "check that the file is a complete Parquet file"

    def parse(self, handle: IO[bytes], *, compression: str | None, display: str) -> pd.DataFrame:
        df = pq.read_table(handle).to_pandas()
        # A named index (df.set_index("id").to_parquet()) is data: bring it back as columns. pandas may
        # store it as a RangeIndex, so look at the names, not the type. Unnamed labels are dropped.
        named = any(name is not None for name in df.index.names)
        # Unnamed labels: read_source renumbers them where they are not 0..n-1 already (a reset that is
        # not needed copies every column under pandas 2: 75 ms of 500,000 rows).
        return df.reset_index() if named else df


class JsonLinesSource(FileSource):
    """JSON lines (``.jsonl``, ``.ndjson``): one JSON object per line, optionally gzipped."""

    name = "jsonl"
    extensions = (".jsonl", ".ndjson")
    fix = "each line must be one JSON object"

    def parse(self, handle: IO[bytes], *, compression: str | None, display: str) -> pd.DataFrame:
        data = handle.read()
        if compression == "gzip":
            data = gzip.decompress(data)
        text = data.decode("utf-8")
        if not text.strip():
            raise _no_rows(display, " (the file is empty)")
        try:
            # dtype=False: keep what JSON says (a quoted "01234" stays text); no guessing of dates.
            return pd.read_json(_StringReader(text), lines=True, dtype=False)
        except (ValueError, TypeError) as exc:
            line, why = _first_bad_json_line(text)
            where = f"line {line}: {why}" if line else _one_line(exc)
            raise SourceError(f"cannot parse JSON lines {display}: {where}", hint=self.fix) from exc


class _StringReader:
    """A minimal text handle (pandas reads JSON from a handle; passing a str is deprecated)."""

    def __init__(self, text: str) -> None:
        self._text = text

    def read(self, *_: Any) -> str:
        text, self._text = self._text, ""
        return text


def _first_bad_json_line(text: str) -> tuple[int | None, str]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            return number, exc.msg
        if not isinstance(value, dict):
            return number, f"expected a JSON object, got {type(value).__name__}"
    return None, ""


class GlobSource(Source):
    """Every file that matches a glob (``data/*.csv``, ``s3://bucket/day=*/part-*.parquet``).

    Files are read in sorted path order, each by the source that claims its name, and concatenated;
    all must have the same columns (the first file's column order is kept). Files with no rows are
    skipped; a glob whose files are all empty has no rows.
    """

    name = "glob"
    formats = ("a glob of those files (data/*.csv)",)

    def can_read(self, uri: str) -> bool:
        return isinstance(uri, str) and is_file_uri(uri) and bool(_GLOB_CHARS.search(_path_part(uri)))

    def read(self, uri: str, *, base_dir: Path, query: str | None = None) -> pd.DataFrame:
        # Imported here: the registry imports this module to register the built-ins.
        from tidal.data.sources.registry import resolve_source

        if query is not None:
            raise SourceError(
                f"a query was given, but {uri!r} is a glob of files: a query is only for SQL sources",
                hint="remove data.query from tidal.yaml",
            )
        parts: list[tuple[str, pd.DataFrame]] = []
        for match in self.expand(uri, base_dir):
            reader = resolve_source(match)
            if isinstance(reader, GlobSource):
                raise SourceError(f"{match} (matched by {uri}) has glob characters in its name",
                                  hint="rename the file")
            try:
                df = reader.read(match, base_dir=base_dir, query=None)
            except EmptySourceError:
                continue
            if parts:
                _check_same_columns(parts[0], (match, df))
                df = df[list(parts[0][1].columns)]
            parts.append((match, df))
        if not parts:
            raise EmptySourceError(f"every file matched by {uri} is empty: no rows", hint=SPEC_HINT)
        if len(parts) == 1:
            return parts[0][1]
        return pd.concat([df for _, df in parts], ignore_index=True)

    @staticmethod
    def expand(uri: str, base_dir: Path | str) -> list[str]:
        """The files ``uri`` matches, as absolute paths or full URLs, in sorted order."""
        if url_scheme(uri) is None:
            pattern = resolve_local_path(uri, base_dir, must_exist=False)
            matches = sorted(p for p in globlib.glob(str(pattern), recursive=True) if Path(p).is_file())
            shown = str(pattern)
        elif url_scheme(uri) in ("http", "https"):
            raise SourceError(f"{mask_password(uri)} is a glob over HTTP, which cannot list files",
                              hint="name each file, or serve the files from an object store (s3://...)")
        else:
            fs, path = _filesystem(uri)
            try:
                found = fs.glob(path, detail=True)
            except Exception as exc:
                raise SourceError(f"cannot list {uri}: {type(exc).__name__}: {exc}", hint=SPEC_HINT) from exc
            files = [p for p, info in found.items() if info.get("type") == "file"]
            matches = sorted(fs.unstrip_protocol(p) for p in files)
            shown = uri
        if not matches:
            raise SourceError(f"no files match {shown}", hint=SPEC_HINT)
        return matches


def _check_same_columns(first: tuple[str, pd.DataFrame], other: tuple[str, pd.DataFrame]) -> None:
    (first_name, first_df), (name, df) = first, other
    want, got = list(first_df.columns), list(df.columns)
    if set(want) == set(got) and len(want) == len(got):
        return
    missing = [c for c in want if c not in got]
    extra = [c for c in got if c not in want]
    detail = "; ".join(
        part for part in (f"missing {missing}" if missing else "", f"extra {extra}" if extra else "") if part
    ) or f"{got} vs {want}"
    raise SourceError(
        f"{name} has different columns from {first_name}: {detail}",
        hint="every file matched by a glob must have the same columns",
    )


__all__ = [
    "CsvSource",
    "FileSource",
    "GlobSource",
    "JsonLinesSource",
    "ParquetSource",
    "is_file_uri",
    "locate",
]
