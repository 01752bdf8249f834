"""The ``Source`` interface: how tidal reads a table from a URI.

A source is a small object with a ``name``, a ``can_read(uri)`` test and a ``read(...)`` method that
returns a pandas DataFrame. The registry (``tidal.data.sources.registry``) keeps a table of them and
picks the one that claims a URI; the built-in ones read CSV, Parquet, JSON lines, globs of those files
and SQL databases.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from tidal.core.errors import SourceError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")

#: The fix printed after "file not found" and similar errors that come from the project file.
SPEC_HINT = "check data.source in tidal.yaml"


class EmptySourceError(SourceError):
    """A source was read but holds no rows (a 0-byte file, a header-only CSV, a query with no result).

    A subclass of ``SourceError``, so callers need not know it; the glob source uses it to skip empty
    parts while still refusing a glob whose every part is empty.
    """


class Source(ABC):
    """A plugin that reads one kind of data source into a pandas DataFrame.

    The contract (checked by ``tidal.data.sources.check_source``):

    - ``name`` is a short unique identifier (``"csv"``, ``"sql"``); registering a second source with
      the same name replaces the first.
    - ``can_read(uri)`` answers quickly, without I/O and without raising, whether this source handles
      the URI. Sources registered later are asked first, so a plugin can take over a URI from a
      built-in one.
    - ``read(uri, base_dir=..., query=...)`` returns a DataFrame with ``str`` column names, rows in the
      source's order, and at least one row. Relative paths are relative to ``base_dir`` (the folder of
      ``tidal.yaml``). Every failure is a ``SourceError`` that says what is wrong and how to fix it
      (``raise SourceError(..., hint=...) from exc``); never let a library's exception escape.
    - ``formats`` lists what the source reads, in words or extensions, for the error a user sees when
      no source claims a URI.

    Worked example: a source for fixed-width text files (``.fwf``), as mainframes export them.
    In ``my_tidal_fwf/__init__.py``::

        from pathlib import Path

        import pandas as pd

        from tidal.core.errors import SourceError
        from tidal.data.sources import EmptySourceError, Source, register_source, resolve_local_path


        class FixedWidthSource(Source):
            name = "fwf"
            formats = (".fwf",)

            def can_read(self, uri: str) -> bool:
                return uri.lower().endswith(".fwf")

            def read(self, uri: str, *, base_dir: Path, query: str | None = None) -> pd.DataFrame:
                if query is not None:
                    raise SourceError("a .fwf file takes no query", hint="remove data.query from tidal.yaml")
                path = resolve_local_path(uri, base_dir)  # SourceError "data file not found: ..."
                try:
                    df = pd.read_fwf(path)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise SourceError(f"cannot parse {path}: {exc}", hint="check the column widths") from exc
                if df.empty:
                    raise EmptySourceError(f"data file {path} has no rows", hint="check data.source")
                df.columns = [str(c) for c in df.columns]
                return df


        register_source(FixedWidthSource)   # or declare the entry point below and skip this line

    To have tidal find it without an import, declare an entry point in the plugin's ``pyproject.toml``::

        [project.entry-points."tidal.sources"]
        fwf = "my_tidal_fwf:FixedWidthSource"

    The project's ``tidal.yaml`` then names the file like any other::

        version: 1
        name: prices
        data:
          source: data/prices.fwf     # claimed by FixedWidthSource.can_read
          target: up

    And its tests hold it to the contract::

        from tidal.data.sources import check_source

        def test_fwf_source(tmp_path):
            (tmp_path / "p.fwf").write_text("a    b\\n1    2\\n")
            check_source(FixedWidthSource(), "p.fwf", tmp_path)
    """

    #: Unique short name, used by ``get_source(name)`` and in messages.
    name: ClassVar[str] = ""
    #: What this source reads (extensions or words), listed when no source claims a URI.
    formats: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def can_read(self, uri: str) -> bool:
        """Whether this source handles ``uri``; no I/O, never raises."""

    @abstractmethod
    def read(self, uri: str, *, base_dir: Path, query: str | None = None) -> pd.DataFrame:
        """Read ``uri`` (relative paths against ``base_dir``) into a DataFrame; ``SourceError`` on failure."""

    def read_config(self, config: Any, *, base_dir: Path, query: str | None = None) -> pd.DataFrame:
        """Read a mapping ``data.source`` whose kind key is this source's ``name`` (``{http: URL, ...}``),
        given as its validated spec model (``tidal.spec.source``). Sources read from text only keep this
        default, which refuses."""
        raise SourceError(f"the {self.name} source is not written as a mapping in data.source",
                          hint=f"write data.source as text for the {self.name} source")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def url_scheme(uri: str) -> str | None:
    """The lower-case scheme of ``uri`` (``"s3"``, ``"postgresql+psycopg"``), or None for a plain path."""
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else None


def resolve_local_path(uri: str, base_dir: Path | str, *, must_exist: bool = True) -> Path:
    """The absolute path of a local file ``uri``, relative paths taken against ``base_dir``.

    With ``must_exist`` (the default), a missing file raises
    ``SourceError("data file not found: /abs/path — check data.source in tidal.yaml")``.
    """
    path = Path(uri).expanduser()
    if not path.is_absolute():
        path = Path(base_dir).expanduser() / path
    path = path.resolve()
    if must_exist and not path.exists():
        raise SourceError(f"data file not found: {path}", hint=SPEC_HINT)
    return path


__all__ = ["SPEC_HINT", "EmptySourceError", "Source", "resolve_local_path", "url_scheme"]
