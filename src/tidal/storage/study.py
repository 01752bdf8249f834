"""Where a hyper-parameter search keeps its study: Optuna's RDB storage beside the metadata store.

Optuna creates its own tables (``studies``, ``trials``, ...) and, like tidal, versions them with Alembic in
a table named ``alembic_version``. The two cannot share that table, so the study lives next to tidal's
tables rather than among them:

- PostgreSQL: in the same database, in a schema of its own (``<schema>_studies``, where ``<schema>`` is the
  first schema of the store URL's ``search_path``, else ``tidal_studies``), created on first use;
- SQLite: in a file beside the store's (``tidal.db`` → ``tidal.studies.db``);
- ``memory://``: in Optuna's in-memory storage (a search in a throw-away store, as in a backtest, does not
  resume).

Either way the study is found again from the store URL alone, so an interrupted search resumes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from tidal.core.errors import StorageError
from tidal.train.search import import_optuna

_SEARCH_PATH = re.compile(r"-c\s*search_path\s*=\s*([^\s,]+)")


def study_url(store_url: str) -> tuple[str, str | None]:
    """The SQLAlchemy URL of the study storage for the metadata store at ``store_url``, and the PostgreSQL
    schema it lives in (None for SQLite)."""
    url = make_url(store_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:"):
            raise StorageError("a search cannot keep its study in an in-memory SQLite store",
                               hint="use a SQLite file or PostgreSQL as the store")
        path = Path(database)
        return url.set(database=str(path.with_name(f"{path.stem}.studies{path.suffix or '.db'}"))).render_as_string(
            hide_password=False), None
    if backend == "postgresql":
        options = str(url.query.get("options", ""))
        found = _SEARCH_PATH.search(options)
        base = found.group(1).split(",")[0].strip('"') if found else "tidal"
        schema = f"{base}_studies"
        kept = _SEARCH_PATH.sub("", options).strip()
        studies = _with_options(url, " ".join(filter(None, [kept, f"-csearch_path={schema}"])))
        return studies.render_as_string(hide_password=False), schema
    raise StorageError(f"a search cannot keep its study in a {backend} store",
                       hint="use SQLite or PostgreSQL as the metadata store")


def _with_options(url: URL, options: str) -> URL:
    return url.update_query_dict({"options": options})


def open_study_storage(store_url: str) -> Any:
    """Optuna's storage for the searches of the metadata store at ``store_url`` (see the module)."""
    optuna = import_optuna()
    if store_url.startswith("memory://"):
        return optuna.storages.InMemoryStorage()
    url, schema = study_url(store_url)
    if schema is not None:
        engine = sa.create_engine(make_url(store_url))
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"cannot create the schema {schema!r} for search studies: "
                               f"{str(exc).splitlines()[0]}", hint="check the store's permissions") from exc
        finally:
            engine.dispose()
    try:
        return optuna.storages.RDBStorage(url, skip_compatibility_check=False)
    except Exception as exc:  # Optuna raises several kinds here (schema too old or new, no connection)
        raise StorageError(f"cannot open the search study storage: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}",
                           hint="check the metadata store URL (storage.store)") from exc


def drop_study_schema(store_url: str) -> None:
    """Drop the PostgreSQL schema of the studies of ``store_url`` (tests, and a workspace being removed)."""
    _url, schema = study_url(store_url)
    if schema is None:
        return
    engine = sa.create_engine(make_url(store_url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()


__all__ = ["drop_study_schema", "open_study_storage", "study_url"]
