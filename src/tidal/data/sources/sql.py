"""The built-in SQL source: any SQLAlchemy URL plus a query.

The query comes either inside the URL, URL-encoded (``sqlite:///data/elec.db?query=SELECT%20*%20FROM%20t``),
or from the spec (``data.query``), or as ``?table=NAME`` for a whole table. A relative SQLite path is
relative to the project folder. Messages name the database with its password masked, and carry the
database's own error message.

A query only reads: it must be one statement (split by ``sqlparse``, under both the standard and the
backslash-escape quoting rules, so a string literal cannot hide a second statement from the check), and it
runs in a transaction that is read-only where the database offers it (SQLite ``PRAGMA query_only`` plus an
authorizer that allows only reads, PostgreSQL ``READ ONLY`` for the transaction and the session, MySQL and
MariaDB ``START TRANSACTION READ ONLY``) and that is always rolled back, never committed.

SQLAlchemy is imported when a query runs, not when tidal starts, so ``can_read`` costs nothing.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tidal.core.errors import SourceError
from tidal.data.sources.base import SPEC_HINT, EmptySourceError, Source, resolve_local_path, url_scheme

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

# The dialects SQLAlchemy ships; third-party ones (duckdb, snowflake ...) are found by entry point.
_BUILTIN_DIALECTS = frozenset({"sqlite", "postgresql", "postgres", "mysql", "mariadb", "mssql", "oracle"})
_DRIVER_INSTALL = {
    "psycopg": "pip install 'tidal[postgres]'",
    "psycopg2": "pip install psycopg2-binary",
    "pg8000": "pip install pg8000",
    "pymysql": "pip install 'tidal[mysql]'",
    "mysqldb": "pip install mysqlclient",
    "mysqlconnector": "pip install mysql-connector-python",
    "mariadbconnector": "pip install mariadb",
    "pyodbc": "pip install pyodbc",
    "pymssql": "pip install pymssql",
    "oracledb": "pip install oracledb",
    "cx_oracle": "pip install cx_Oracle",
}
_ASYNC_DRIVERS = frozenset({"asyncpg", "aiosqlite", "aiomysql", "asyncmy", "psycopg_async", "aioodbc"})
_QUERY_HINT = ("check data.query in tidal.yaml (or the ?query= part of data.source); it runs as one read-only "
               "statement, a SELECT or WITH ... SELECT")
_CONNECT_HINT = "check the host, port, user and database in data.source, and that the server is running"


@cache
def _plugin_dialects() -> frozenset[str]:
    names = (ep.name for ep in importlib.metadata.entry_points(group="sqlalchemy.dialects"))
    return frozenset(name.split(".")[0].lower() for name in names)


def mask_password(uri: str) -> str:
    """``uri`` with the password of ``scheme://user:password@host`` replaced by ``***``."""
    return re.sub(r"^([^:/]+://[^:/@]*):[^@]*@", r"\1:***@", uri)


class SqlSource(Source):
    """Rows from a SQL database, by SQLAlchemy URL and query."""

    name = "sql"
    formats = ("a SQLAlchemy URL (sqlite:///file.db?query=..., postgresql+psycopg://...)",)

    def can_read(self, uri: str) -> bool:
        scheme = url_scheme(uri) if isinstance(uri, str) else None
        if scheme is None:
            return False
        dialect = scheme.split("+", 1)[0]
        return dialect in _BUILTIN_DIALECTS or dialect in _plugin_dialects()

    def read(self, uri: str, *, base_dir: Path, query: str | None = None) -> pd.DataFrame:
        url, statement, shown = prepare(uri, base_dir=base_dir, query=query)
        df = _run(url, statement, shown)
        if len(df) == 0:
            raise EmptySourceError(f"the query on {shown} returned no rows", hint=_QUERY_HINT)
        df.columns = [str(c) for c in df.columns]
        return df


def prepare(uri: str, *, base_dir: Path, query: str | None) -> tuple[URL, Any, str]:
    """The checked URL of ``uri`` (SQLite paths resolved), its statement (see :func:`_statement`) and the URL
    as messages show it (password masked); SourceError for a bad URL, dialect, driver or query."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if url_scheme(uri) == "postgres":
        raise SourceError(
            f"{mask_password(uri)!r} is not a SQLAlchemy URL",
            hint="write postgresql+psycopg://... instead of postgres://...",
        )
    try:
        url = make_url(uri)
    except (ArgumentError, ValueError) as exc:
        raise SourceError(f"not a valid database URL: {mask_password(uri)}", hint=SPEC_HINT) from exc
    statement, url = _statement(url, query)
    shown = url.render_as_string(hide_password=True)
    _check_dialect(url, shown)
    return _resolve_sqlite(url, base_dir), statement, shown


def read_after(uri: str, *, base_dir: Path, query: str | None, column: str, after: Any | None) -> pd.DataFrame:
    """The rows of the SQL source ``uri`` (and ``query``) whose ``column`` is greater than ``after`` — every row
    whose ``column`` is not null when ``after`` is None — possibly none; read-only as :meth:`SqlSource.read`.

    The query becomes a derived table, ``SELECT * FROM (<query>) AS tidal_src WHERE <column> > :after``: the
    column is quoted by SQLAlchemy and the watermark is a bound parameter, never formatted into the SQL.
    SourceError, naming the columns there are, when ``column`` is not one of the query's."""
    import sqlalchemy as sa

    url, statement, shown = prepare(uri, base_dir=base_dir, query=query)
    if isinstance(statement, str):
        # Every ':' escaped, so that a ':name' (or '10:30' in a literal) in the user's SQL is never taken for a
        # bind parameter; SQLAlchemy removes the escapes (and doubles '%' for pyformat drivers) as it compiles.
        source = sa.text(statement.replace(":", "\\:")).columns().subquery("tidal_src")
    else:
        source = statement.subquery("tidal_src")
    rows: Any = sa.select(sa.literal_column("*")).select_from(source)
    col: Any = sa.column(column)

    def reader(conn: Any, _: Any) -> pd.DataFrame:
        found = conn.execute(rows.where(sa.false())).keys()  # the columns only: no row matches
        names = [str(c) for c in found]
        if column not in names:
            raise SourceError(f"data.incremental.column {column!r} is not a column of the query on {shown} "
                              f"(its columns: {', '.join(names[:20])})",
                              hint="name one of those columns in data.incremental.column (as the query spells it)")
        where = col.is_not(None) if after is None else col > sa.bindparam("tidal_after", after)
        return pd.read_sql_query(rows.where(where), conn)

    df = _run(url, statement, shown, reader)
    df.columns = [str(c) for c in df.columns]
    return df


def _statement(url: URL, query: str | None) -> tuple[Any, URL]:
    """The statement to run (from ``query``, ``?query=`` or ``?table=``) and the URL without those keys."""
    import sqlalchemy as sa

    in_url = url.query.get("query")
    table = url.query.get("table")
    url = url.difference_update_query(["query", "table"])
    shown = url.render_as_string(hide_password=True)
    given = [s for s in (query, in_url, table) if s]
    if len(given) > 1:
        raise SourceError(
            f"the SQL source {shown} has more than one of data.query, ?query= and ?table=",
            hint="give the query in one place only",
        )
    if not given:
        raise SourceError(
            f"no query for the SQL source {shown}",
            hint="set data.query in tidal.yaml, or add ?query=SELECT... (URL-encoded) "
            "or ?table=NAME to the URL",
        )
    if isinstance(table, str) and table:
        schema, _, name = table.rpartition(".")
        # sa.table quotes the identifiers, so a table name cannot inject SQL.
        return sa.select(sa.text("*")).select_from(sa.table(name, schema=schema or None)), url
    text = query or in_url
    if not isinstance(text, str):
        raise SourceError(f"?query= appears more than once in {shown}", hint="give one query")
    # A str is run as the driver's own SQL: no ':name' binds, no '%' placeholders.
    return one_statement(text, shown), url


def _is_code(token: Any) -> bool:
    """Whether a sqlparse token is code: not whitespace, not a comment, not a statement's ``;``."""
    from sqlparse import tokens as T

    return not (token.is_whitespace or token.ttype in T.Comment
                or (token.ttype is T.Punctuation and token.value == ";"))


def _statements(text: str) -> list[str]:
    """The statements of ``text`` that hold code (``SELECT 1;;`` and a trailing comment hold one)."""
    import sqlparse

    return [part for part in sqlparse.split(text)
            if any(_is_code(t) for stmt in sqlparse.parse(part) for t in stmt.flatten())]


def one_statement(text: str, shown: str) -> str:
    """``text`` as a single SQL statement without its trailing ``;`` and comments, or :class:`SourceError`
    when it holds more than one (``SELECT ...; DROP TABLE t``) or none.

    Split twice: as written, and with backslashes neutralised. PostgreSQL reads ``'a\\'`` as a whole
    string where MySQL reads an escaped quote, so a query must be one statement under either rule.
    """
    import sqlparse

    statements = _statements(text)
    count = max(len(statements), len(_statements(text.replace("\\", "_"))))
    if count > 1:
        raise SourceError(
            f"the query for {shown} holds {count} SQL statements; tidal runs exactly one, read-only",
            hint="keep a single SELECT (or WITH ... SELECT) in data.query and remove the other statements",
        )
    if not statements:
        raise SourceError(f"the query for {shown} is empty (only comments or ';')", hint=_QUERY_HINT)
    tokens = list(sqlparse.parse(statements[0])[0].flatten())
    last = max(i for i, t in enumerate(tokens) if _is_code(t))
    return "".join(t.value for t in tokens[: last + 1])


def _resolve_sqlite(url: URL, base_dir: Path) -> URL:
    """Make a relative SQLite path relative to the project, and refuse a missing file (SQLite would
    silently create an empty database)."""
    if url.get_backend_name() != "sqlite":
        return url
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return url
    path = resolve_local_path(database, base_dir, must_exist=False)
    if not path.is_file():
        raise SourceError(f"database file not found: {path}", hint=SPEC_HINT)
    return url.set(database=str(path))


def _check_dialect(url: URL, shown: str) -> None:
    """Refuse an unknown dialect or driver, or an async one, before touching any file or server."""
    from sqlalchemy.exc import NoSuchModuleError

    driver = url.drivername.partition("+")[2]
    if driver in _ASYNC_DRIVERS:
        raise SourceError(f"{shown} uses the async driver {driver!r}",
                          hint=f"use a synchronous driver, e.g. {_sync_example(url)}")
    try:
        url.get_dialect()  # loads the dialect class only; the driver module is imported by create_engine
    except NoSuchModuleError as exc:
        raise SourceError(
            f"SQLAlchemy has no dialect or driver for {url.drivername!r} ({shown})",
            hint="check the URL scheme (e.g. postgresql+psycopg://), or pip install the dialect's package",
        ) from exc


def _run(url: URL, statement: Any, shown: str,
         reader: Callable[[Any, Any], pd.DataFrame] | None = None) -> pd.DataFrame:
    """The rows of ``statement`` on ``url``, in a read-only transaction that is rolled back. ``reader(conn,
    statement)`` reads them when given (a parameterised statement: :mod:`tidal.data.sources.sql_incremental`)."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    secret = url.password

    def clean(exc: BaseException) -> str:
        # The database's own message, first line, with the password scrubbed should it appear.
        while isinstance(exc, pd.errors.DatabaseError) and exc.__cause__ is not None:
            exc = exc.__cause__  # pandas wraps the SQLAlchemy error and repeats the query
        orig = getattr(exc, "orig", None) or exc
        text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        return text.replace(str(secret), "***") if secret else text

    try:
        engine = create_engine(url, poolclass=NullPool)
    except ImportError as exc:  # the DBAPI driver module is not installed
        raise SourceError(
            f"the database driver for {url.drivername!r} is not installed (no module {exc.name!r})",
            hint=_install_hint(url, exc.name),
        ) from exc
    try:
        try:
            conn = engine.connect()
        except (DBAPIError, SQLAlchemyError) as exc:
            raise SourceError(f"cannot connect to {shown}: {clean(exc)}", hint=_CONNECT_HINT) from exc
        with conn:
            # One transaction, begun here so pandas does not begin (and commit) its own, rolled back at
            # the end: nothing a query does is ever committed.
            transaction = conn.begin()
            try:
                _read_only(conn)
                # no_parameters: the driver runs the text as is, so a '%' in LIKE 'a%' is not taken for
                # a placeholder (psycopg, pymysql) when there are no parameters.
                if reader is not None:
                    return reader(conn, statement)
                return pd.read_sql_query(statement, conn.execution_options(no_parameters=True))
            except (DBAPIError, SQLAlchemyError, pd.errors.DatabaseError) as exc:
                text = clean(exc)
                if text in ("not authorized", "authorization denied"):  # the SQLite authorizer in _read_only
                    text += " (tidal lets a SQLite query only read)"
                raise SourceError(f"SQL query failed on {shown}: {text}", hint=_QUERY_HINT) from exc
            finally:
                transaction.rollback()
    finally:
        engine.dispose()


def _read_only(conn: Any) -> None:
    """Make the connection's transaction read-only where the database offers it (before the query runs)."""
    backend = conn.dialect.name
    if backend == "sqlite":
        import sqlite3

        conn.exec_driver_sql("PRAGMA query_only = ON")
        # query_only still lets ATTACH and VACUUM INTO create files: allow reads only.
        reads = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_TRANSACTION,
                 getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
        raw = conn.connection.dbapi_connection
        if isinstance(raw, sqlite3.Connection):
            raw.set_authorizer(lambda action, *_: sqlite3.SQLITE_OK if action in reads else sqlite3.SQLITE_DENY)
    elif backend == "postgresql":
        # The session default too: should a statement end the transaction, the next one is read-only as well.
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.exec_driver_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    elif backend in ("mysql", "mariadb"):
        conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        conn.exec_driver_sql("START TRANSACTION READ ONLY")


def _install_hint(url: URL, module: str | None) -> str:
    driver = url.drivername.partition("+")[2] or (module or "").lower()
    hint = _DRIVER_INSTALL.get(driver, f"pip install {module}" if module else "install the database driver")
    if url.get_backend_name() == "postgresql" and driver != "psycopg" and importlib.util.find_spec("psycopg"):
        hint += f" — or use the installed psycopg 3: {_sync_example(url)}"
    return hint


def _sync_example(url: URL) -> str:
    sync = {"postgresql": "postgresql+psycopg", "sqlite": "sqlite", "mysql": "mysql+pymysql"}
    backend = url.get_backend_name()
    return f"{sync.get(backend, backend)}://..."


__all__ = ["SqlSource", "mask_password", "prepare", "read_after"]
