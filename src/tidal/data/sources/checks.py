"""``check_source``: the conformance check every source plugin must pass (like scikit-learn's
``check_estimator``). Call it from the plugin's own tests with a URI that holds a small table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tidal.core.errors import PluginCheckFailed, SourceError
from tidal.data.sources.base import Source, url_scheme

# can_read must answer False (or True) for odd input, never raise.
_ODD_URIS = ("", "x", "://", "?", "no-such-scheme://x", "C:\\data\\x.csv", "data/*", " ")


class SourceCheckFailed(PluginCheckFailed):
    """A source broke the ``Source`` contract; the message says which clause."""


def _fail(source: Source, clause: str) -> SourceCheckFailed:
    return SourceCheckFailed(f"{type(source).__name__} ({source.name!r}): {clause}")


def missing_variant(uri: str) -> str:
    """A URI like ``uri`` that names nothing: the last path segment gets a ``tidal-missing-`` prefix."""
    head, sep, tail = uri.rpartition("/")
    if not sep and url_scheme(uri) is None:
        head, sep, tail = "", "", uri
    return f"{head}{sep}tidal-missing-{tail}"


def check_source(
    source: Source,
    uri: str,
    base_dir: Path | str,
    *,
    query: str | None = None,
    missing_uri: str | None = None,
) -> pd.DataFrame:
    """Check that ``source`` honours the ``Source`` contract on ``uri``; returns the frame it read.

    Checks: ``name`` is a non-empty str; ``can_read`` answers a bool, without raising, for ``uri`` (True)
    and for odd strings; ``read`` returns a DataFrame with at least one row, unique ``str`` column names,
    and the same frame when read twice; reading a missing input (``missing_uri``, by default ``uri``
    with ``tidal-missing-`` before its last segment) raises ``SourceError``, not another exception.
    Raises ``SourceCheckFailed`` (an ``AssertionError``) naming the broken clause.
    """
    base = Path(base_dir)
    if not isinstance(source, Source):
        raise SourceCheckFailed(f"{source!r} does not subclass tidal.data.sources.Source")
    if not isinstance(source.name, str) or not source.name.strip():
        raise _fail(source, "name must be a non-empty str")
    if not isinstance(source.formats, tuple) or not all(isinstance(f, str) for f in source.formats):
        raise _fail(source, "formats must be a tuple of str")
    for odd in _ODD_URIS:
        try:
            answer = source.can_read(odd)
        except Exception as exc:
            raise _fail(source, f"can_read({odd!r}) raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(answer, bool):
            raise _fail(source, f"can_read({odd!r}) returned {answer!r}, not a bool")
    if source.can_read(uri) is not True:
        raise _fail(source, f"can_read({uri!r}) is not True")

    df = _read(source, uri, base, query)
    if not isinstance(df, pd.DataFrame):
        raise _fail(source, f"read() returned {type(df).__name__}, not a pandas DataFrame")
    if len(df) == 0:
        raise _fail(source, "read() returned no rows; raise EmptySourceError instead")
    bad = [c for c in df.columns if not isinstance(c, str)]
    if bad:
        raise _fail(source, f"column names must be str, got {bad[:5]!r}")
    if df.columns.has_duplicates:
        raise _fail(source, f"duplicate column names {sorted(set(df.columns[df.columns.duplicated()]))!r}")
    again = _read(source, uri, base, query)
    try:
        pd.testing.assert_frame_equal(df.reset_index(drop=True), again.reset_index(drop=True))
    except AssertionError as exc:
        raise _fail(source, f"reading the same input twice gave different frames: {exc}") from exc

    missing = missing_uri if missing_uri is not None else missing_variant(uri)
    try:
        source.read(missing, base_dir=base, query=query)
    except SourceError:
        pass
    except Exception as exc:
        clause = f"read({missing!r}) of a missing input raised {type(exc).__name__}, not SourceError: {exc}"
        raise _fail(source, clause) from exc
    else:
        raise _fail(source, f"read({missing!r}) of a missing input did not raise SourceError")
    return df


def _read(source: Source, uri: str, base: Path, query: str | None) -> pd.DataFrame:
    try:
        return source.read(uri, base_dir=base, query=query)
    except SourceError as exc:
        raise _fail(source, f"read({uri!r}) raised SourceError on a valid input: {exc}") from exc
    except Exception as exc:
        raise _fail(source, f"read({uri!r}) raised {type(exc).__name__}, not SourceError: {exc}") from exc


__all__ = ["SourceCheckFailed", "check_source", "missing_variant"]
