"""The table of sources: register them by name, find the one that reads a URI, read it.

Resolution order: sources registered later are asked first, so a plugin (registered by
``register_source`` or found through the ``tidal.sources`` entry-point group) can take a URI over from
a built-in source. The built-ins are asked in this order: SQL URLs, images (a folder of class folders, a
glob of .png/.jpg files), globs, then single files by extension (CSV, Parquet, JSON lines). The ``http``
source (a JSON API) and the ``redis`` source (a sensor stream) claim no text: a mapping ``data.source: {http: URL,
...}`` or ``{redis: URL, stream: KEY, ...}`` names each by its kind key.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import TypeVar, overload

import pandas as pd

from tidal.core.errors import PluginNotFound, SourceError, TidalError
from tidal.data.sources.base import SPEC_HINT, EmptySourceError, Source
from tidal.data.sources.files import CsvSource, GlobSource, JsonLinesSource, ParquetSource
from tidal.data.sources.http import HttpSource
from tidal.data.sources.images import ImageFolderSource
from tidal.data.sources.sql import SqlSource
from tidal.data.sources.stream import RedisStreamSource
from tidal.spec.section import Section
from tidal.spec.source import SOURCE_KINDS, source_label

ENTRY_POINT_GROUP = "tidal.sources"

S = TypeVar("S", bound=Source)

# Insertion-ordered: the last entry is asked first. Built-ins go in reverse of the order they are asked.
_sources: dict[str, Source] = {}
_plugins_loaded = False


def _register_builtins() -> None:
    # HttpSource and RedisStreamSource claim no text (each reads a mapping data.source), so their places only order
    # the formats listed
    for source in (RedisStreamSource(), HttpSource(), JsonLinesSource(), ParquetSource(), CsvSource(), GlobSource(),
                   ImageFolderSource(), SqlSource()):
        _sources[source.name] = source


_register_builtins()


@overload
def register_source(source: type[S]) -> type[S]: ...
@overload
def register_source(source: S) -> S: ...
def register_source(source: Source | type[Source]) -> Source | type[Source]:
    """Add ``source`` (an instance, or a class that takes no arguments) to the table.

    A source with the same name is replaced, and the new one is asked first when resolving a URI.
    Returns its argument, so it also works as a class decorator.
    """
    instance = source() if isinstance(source, type) else source
    if not isinstance(instance, Source):
        raise TypeError(f"{source!r} is not a tidal.data.sources.Source")
    if not isinstance(instance.name, str) or not instance.name:
        raise TypeError(f"{type(instance).__name__}.name must be a non-empty string")
    _sources.pop(instance.name, None)
    _sources[instance.name] = instance
    return source


def unregister_source(name: str) -> None:
    """Remove the source called ``name`` (a no-op if there is none); built-ins come back on
    ``reset_sources()``."""
    _sources.pop(name, None)


def reset_sources() -> None:
    """Back to the built-in sources only (plugins from entry points are loaded again on next use)."""
    global _plugins_loaded
    _sources.clear()
    _register_builtins()
    _plugins_loaded = False


def _load_plugins() -> None:
    """Register the sources declared in the ``tidal.sources`` entry-point group, once."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            register_source(ep.load())
        except Exception as exc:  # a broken plugin must say which one it is
            raise SourceError(
                f"cannot load source plugin {ep.name!r} ({ep.value}): {type(exc).__name__}: {exc}",
                hint="reinstall or uninstall the package that provides it",
            ) from exc


def known_sources() -> list[str]:
    """The names of the registered sources, in the order they are asked."""
    _load_plugins()
    return list(reversed(_sources))


def get_source(name: str) -> Source:
    """The source called ``name``; ``PluginNotFound`` (listing the known names) if there is none."""
    _load_plugins()
    try:
        return _sources[name]
    except KeyError:
        raise PluginNotFound("source", name, _sources) from None


def resolve_source(uri: str) -> Source:
    """The source that reads ``uri``; ``SourceError`` listing what is supported if none does."""
    _load_plugins()
    if not isinstance(uri, str) or not uri.strip():
        raise SourceError("data.source is empty", hint="set data.source in tidal.yaml to a path, glob or URL")
    for source in reversed(_sources.values()):
        if source.can_read(uri):
            return source
    formats = [f for s in reversed(_sources.values()) for f in s.formats]
    suffix = "".join(Path(uri.split("?", 1)[0]).suffixes[-2:])
    what = f"unknown file extension {suffix!r}" if suffix else "no file extension or known URL scheme"
    raise SourceError(
        f"no source can read {uri!r}: {what}; supported: {', '.join(formats)}",
        hint=f"{SPEC_HINT}, or register a Source for this format (see tidal.data.sources.Source)",
    )


def read_source(
    uri: str | Section, *, base_dir: Path | str, query: str | None = None, source: str | None = None
) -> pd.DataFrame:
    """Read ``uri`` with the source that claims it (or the one called ``source``).

    ``uri`` is ``data.source``: text (a path, glob or URL), or a mapping's validated model
    (``tidal.spec.source``, ``{http: URL, ...}``), read by the source named by its kind key.
    Relative paths are relative to ``base_dir`` (the project folder). ``query`` is for SQL sources.
    Returns a DataFrame with ``str`` column names and a fresh ``RangeIndex``. Every failure is a
    ``SourceError`` (an unknown ``source`` name is ``PluginNotFound``).
    """
    if not isinstance(uri, str):
        reader = get_source(source or source_kind(uri))
        label = source_label(uri)
        try:
            df = reader.read_config(uri, base_dir=Path(base_dir), query=query)
        except TidalError:
            raise
        except Exception as exc:  # a plugin that forgot to translate its library's error
            raise SourceError(f"source {reader.name!r} failed to read {label}: {type(exc).__name__}",
                              hint=SPEC_HINT) from exc
        return _checked(df, reader, label)
    reader = get_source(source) if source is not None else resolve_source(uri)
    try:
        df = reader.read(uri, base_dir=Path(base_dir), query=query)
    except TidalError:
        raise
    except Exception as exc:  # a plugin that forgot to translate its library's error
        raise SourceError(
            f"source {reader.name!r} failed to read {uri!r}: {type(exc).__name__}: {exc}", hint=SPEC_HINT
        ) from exc
    return _checked(df, reader, uri)


def source_kind(config: Section) -> str:
    """The kind key of a mapping ``data.source`` (``"http"``): the name of the source that reads it."""
    for kind, model in SOURCE_KINDS.items():
        if isinstance(config, model):
            return kind
    raise SourceError(f"data.source is a {type(config).__name__}, which no source reads", hint=SPEC_HINT)


def _checked(df: object, reader: Source, uri: str) -> pd.DataFrame:
    """``df`` held to the contract of ``Source.read`` (a DataFrame, text column names, rows)."""
    if not isinstance(df, pd.DataFrame):
        raise SourceError(
            f"source {reader.name!r} returned {type(df).__name__}, not a pandas DataFrame",
            hint="fix the source plugin: read() must return a DataFrame",
        )
    bad = [c for c in df.columns if not isinstance(c, str)]
    if bad:
        raise SourceError(
            f"source {reader.name!r} returned non-string column names {bad[:5]!r}",
            hint="fix the source plugin: column names must be str",
        )
    if len(df) == 0:
        raise EmptySourceError(f"{uri} has no rows (source {reader.name!r})", hint=SPEC_HINT)
    if not isinstance(df.index, pd.RangeIndex) or df.index.start != 0 or df.index.step != 1:
        # Row labels carry no meaning in tidal (the snapshot ignores them); positions do.
        df = df.reset_index(drop=True)
    return df


__all__ = [
    "ENTRY_POINT_GROUP",
    "get_source",
    "known_sources",
    "read_source",
    "register_source",
    "reset_sources",
    "resolve_source",
    "source_kind",
    "unregister_source",
]
