"""tidal.data.sources: read a table from a path, a glob or a URL (a plugin table, like the drift tests).

    from tidal.data.sources import read_source
    df = read_source("data/elec2.csv.gz", base_dir=project_dir)
    df = read_source("postgresql+psycopg://me@db/prod", base_dir=project_dir, query="SELECT * FROM t")

Built-in sources: ``csv`` (.csv, .tsv, gzipped too), ``parquet``, ``jsonl`` (.jsonl, .ndjson, gzipped
too), ``glob`` (``data/*.csv``), ``images`` (a folder of class folders of PNG/JPEG files, or a glob
of them: ``data/train/*/*.png``) and ``sql`` (any SQLAlchemy URL); and, named by a mapping ``data.source``,
``http`` (a JSON API: ``{http: URL, ...}``) and ``redis`` (a sensor stream: ``{redis: URL, stream: KEY, ...}``,
collected through a consumer group by ``tidal run``). Write another by subclassing
``Source`` (its docstring has a worked example) and check it with ``check_source``.
"""

from tidal.data.sources.base import EmptySourceError, Source, resolve_local_path
from tidal.data.sources.checks import SourceCheckFailed, check_source
from tidal.data.sources.registry import (
    get_source,
    known_sources,
    read_source,
    register_source,
    reset_sources,
    resolve_source,
    unregister_source,
)

__all__ = [
    "EmptySourceError",
    "Source",
    "SourceCheckFailed",
    "check_source",
    "get_source",
    "known_sources",
    "read_source",
    "register_source",
    "reset_sources",
    "resolve_local_path",
    "resolve_source",
    "unregister_source",
]
