"""Engines, connections, transactions and error translation for the SQL metadata store.

- :func:`create_engine_for` checks a store URL (SQLite file or PostgreSQL via psycopg) and builds an
  engine configured for it: SQLite in WAL mode, ``synchronous=NORMAL``, a 30 s busy timeout and foreign
  keys on, with tidal emitting ``BEGIN`` itself so writers can take the lock up front.
- :class:`ThreadConnections` keeps one open connection per thread. Opening a connection (and on SQLite
  setting its pragmas) costs far more than a small write, so reusing it is what makes thousands of
  ``log_batch`` calls per second possible.
- :class:`Transaction` is the one place where a unit of work begins, commits or rolls back, and where
  SQLAlchemy errors become :class:`~tidal.core.errors.StorageError` naming the store (never a password).
  :class:`DriverTransaction` is the same on SQLite for the prediction log's appends, at the driver level.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import NullPool

from tidal.core.errors import StorageError
from tidal.storage._codec import SUPPORTED_METADATA_URLS

#: How long a SQLite writer waits for another one to finish before giving up.
BUSY_TIMEOUT_S = 30.0
#: A PostgreSQL connection idle for longer than this is pinged before use (servers restart, proxies
#: drop idle connections); a busy connection never is, so the hot path pays nothing.
PG_PING_AFTER_S = 30.0

SUPPORTED_URLS = SUPPORTED_METADATA_URLS


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def resolve_url(url: str) -> URL:
    """Parse and check a store URL; the SQLAlchemy URL to connect to, or a StorageError that says why not."""
    shown = redact(url)
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as exc:
        raise StorageError(f"not a database URL: {shown!r}", hint=f"use one of: {SUPPORTED_URLS}") from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise StorageError(f"unsupported SQLite driver {driver!r} in {shown!r}",
                               hint="use sqlite:///path/to/tidal.db")
        database = parsed.database or ""
        if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
            raise StorageError(
                f"an in-memory SQLite store is not supported: {shown!r}",
                hint="use memory:// for a throwaway in-process store, or sqlite:///path/to/tidal.db",
            )
        return parsed.set(drivername="sqlite+pysqlite")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise StorageError(f"unsupported PostgreSQL driver {driver!r} in {shown!r}",
                               hint="use postgresql+psycopg://user@host:5432/dbname (psycopg 3)")
        if importlib.util.find_spec("psycopg") is None:
            raise StorageError(f"PostgreSQL support is not installed, needed for {shown!r}",
                               hint="pip install 'tidal[postgres]'")
        return parsed.set(drivername="postgresql+psycopg")
    raise StorageError(f"unsupported store URL scheme {parsed.drivername!r} in {shown!r}",
                       hint=f"use one of: {SUPPORTED_URLS}")


def create_engine_for(url: URL) -> Engine:
    """An engine for a URL checked by :func:`resolve_url`.

    NullPool: :class:`ThreadConnections` keeps each thread's connection open itself, so a pool would only
    add a cap on the number of threads.
    """
    if url.get_backend_name() == "sqlite":
        _make_parent_folder(url)
        engine = sa.create_engine(
            url, poolclass=NullPool,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S},
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = 10
    if "application_name" not in url.query:
        connect_args["application_name"] = "tidal"
    return sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)


def _make_parent_folder(url: URL) -> None:
    database = url.database or ""
    if database.startswith("file:"):  # a sqlite URI filename: leave it to SQLite
        return
    folder = Path(database).expanduser().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the folder {str(folder)!r} for the SQLite store: {exc.strerror or exc}",
            hint="choose a writable location with TIDAL_STORE_URL=sqlite:///path/to/tidal.db",
        ) from exc


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # tidal emits BEGIN itself (Transaction below): BEGIN IMMEDIATE for writes takes the write lock up
    # front, so a read-then-write transaction never fails half way with "database is locked".
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        # WAL: readers never block the writer; with synchronous=NORMAL a commit is one append to the
        # log (no fsync per commit), and committed data survives a process crash.
        _set_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _set_wal(cursor: Any) -> None:
    # Switching a fresh database to WAL needs an exclusive lock, and SQLite answers "database is locked"
    # at once when another connection holds one, without calling the busy handler. Several processes
    # (server workers) or threads opening a new database together meet this: wait as the handler would.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


# -- error translation ----------------------------------------------------------------------------------


def _orig(exc: BaseException) -> BaseException:
    return getattr(exc, "orig", None) or exc


def _sqlstate(exc: BaseException) -> str:
    return getattr(_orig(exc), "sqlstate", None) or ""


def is_fk_violation(exc: sa_exc.IntegrityError) -> bool:
    return _sqlstate(exc) == "23503" or "FOREIGN KEY constraint failed" in str(_orig(exc))


def is_unique_violation(exc: sa_exc.IntegrityError) -> bool:
    return _sqlstate(exc) == "23505" or "UNIQUE constraint failed" in str(_orig(exc))


def translate(exc: sa_exc.SQLAlchemyError, shown: str, doing: str) -> StorageError:
    """A StorageError for ``exc`` that says which store and what it was doing, with a fix if we know one."""
    detail = str(_orig(exc)).strip().splitlines()[0] if str(_orig(exc)).strip() else type(exc).__name__
    lowered = detail.lower()
    hint: str | None = None
    if "database is locked" in lowered or "database is busy" in lowered:
        hint = (f"another process kept the database locked for more than {BUSY_TIMEOUT_S:.0f} s; "
                "retry, or use PostgreSQL for many concurrent writers")
    elif "unable to open database file" in lowered or "readonly database" in lowered:
        hint = "check that the file and its folder exist and are writable"
    elif "does not exist" in lowered and "database" in lowered:
        hint = "create the database first (e.g. createdb), or fix its name in the store URL"
    elif "password authentication failed" in lowered or "authentication" in lowered:
        hint = "check the user and password in the store URL (TIDAL_STORE_URL)"
    elif "no schema has been selected" in lowered:
        hint = "the schema named by search_path in the store URL does not exist: create it, or fix the URL"
    elif "permission denied" in lowered:
        hint = "the database user lacks the rights tidal needs (create tables, read and write them)"
    elif "file is not a database" in lowered:
        hint = "that file is not a SQLite database: point TIDAL_STORE_URL at another path"
    elif _sqlstate(exc).startswith("08") or "connection failed" in lowered or "could not connect" in lowered:
        hint = ("check that the database server is running and reachable at the host and port in the store "
                "URL (TIDAL_STORE_URL)")
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        hint = "the connection to the database was lost; retry (a new connection is opened)"
    return StorageError(f"{doing} failed on {shown}: {detail}", hint=hint)


# -- connections ----------------------------------------------------------------------------------------


class ThreadConnections:
    """One open :class:`Connection` per thread, all closed by :meth:`close`.

    A connection whose thread has ended is closed the next time a thread opens one, so a server that
    replaces its worker threads does not leak connections.
    """

    def __init__(self, engine: Engine, shown: str, *, what: str = "metadata store",
                 opener: str = "tidal.storage.open_metadata_store") -> None:
        self.engine = engine
        self.shown = shown
        self._what = what  # for the message when used after close
        self._opener = opener
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._ping_after = None if self.is_sqlite else PG_PING_AFTER_S
        # SQLite allows one writer at a time. Threads of this process queue for it on this mutex; only
        # other processes meet SQLite's busy handler, which polls with sleeps of up to 100 ms.
        self.sqlite_writer = threading.Lock()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: dict[int, tuple[threading.Thread, Connection]] = {}
        self._closed = False
        self._orphans: list[Any] = []
        ref = weakref.ref(self)

        def after_fork_in_child() -> None:
            conns = ref()
            if conns is not None:
                conns._after_fork()

        os.register_at_fork(after_in_child=after_fork_in_child)

    def get(self) -> Connection:
        """This thread's connection, opened on first use."""
        local = self._local
        conn: Connection | None = getattr(local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            return self._open_new()
        if self._ping_after is not None:
            now = time.monotonic()
            if now - local.used > self._ping_after:
                conn = self._ping(conn)
            local.used = now
        return conn

    def _ping(self, conn: Connection) -> Connection:
        try:
            conn.exec_driver_sql("SELECT 1")
            conn.rollback()
            return conn
        except sa_exc.DBAPIError:
            self.discard(conn)
            return self._open_new()

    def _open_new(self) -> Connection:
        with self._lock:
            if self._closed:
                raise StorageError(f"the {self._what} {self.shown} is closed",
                                   hint=f"open a new one with {self._opener}")
            dead = [k for k, (t, _) in self._open.items() if not t.is_alive()]
            stale = [self._open.pop(k)[1] for k in dead]
        for old in stale:
            _close_quietly(old)
        try:
            conn = self.engine.connect()
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc, self.shown, "opening a connection") from exc
        thread = threading.current_thread()
        with self._lock:
            previous = self._open.pop(id(thread), None)
            self._open[id(thread)] = (thread, conn)
        if previous is not None and previous[1] is not conn:
            _close_quietly(previous[1])
        self._local.conn = conn
        self._local.used = time.monotonic()
        return conn

    def discard(self, conn: Connection) -> None:
        """Forget and close a broken connection; the thread's next call opens a new one."""
        with self._lock:
            for key, (_, c) in list(self._open.items()):
                if c is conn:
                    del self._open[key]
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        _close_quietly(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = [c for _, c in self._open.values()]
            self._open.clear()
        for conn in conns:
            _close_quietly(conn)
        self.engine.dispose()

    def _after_fork(self) -> None:
        # The parent's connections belong to the parent: closing them here would end its sessions
        # (PostgreSQL) or corrupt its locks (SQLite). Keep them referenced, unused, and start afresh.
        self._orphans.append((self._local, dict(self._open)))
        self._local = threading.local()
        self._lock = threading.Lock()
        self.sqlite_writer = threading.Lock()
        self._open = {}
        self.engine.dispose(close=False)


def driver_connection(conn: Connection) -> DBAPIConnection:
    """The DB-API connection under ``conn``, for statements run on the driver's cursor. SQLAlchemy has
    none there once ``conn`` is invalidated, which :meth:`ThreadConnections.get` never hands out."""
    raw = conn.connection.dbapi_connection
    if raw is None:
        raise StorageError("the database connection was invalidated while in use",
                           hint="try again: the next attempt opens a new connection")
    return raw


def _close_quietly(conn: Connection) -> None:
    # A broken connection may fail to close; there is nothing left to release then.
    with contextlib.suppress(Exception):
        conn.close()


class Transaction:
    """One unit of work on this thread's connection: commits on success, rolls back on any error.

    On SQLite a write transaction first takes the process's writer mutex, then ``BEGIN IMMEDIATE``
    (the database's write lock, so concurrent read-modify-write transactions queue instead of failing
    half way); a read starts with ``BEGIN`` so that its statements see one snapshot. PostgreSQL begins
    implicitly.

    Transactions nest: one opened on a thread that is already inside a write transaction of the same
    connections *joins* it (same connection, no commit of its own), so that several store calls made
    inside :meth:`~tidal.storage.sql.store.SqlMetadataStore.atomic` commit together or not at all. An error in
    a joined block propagates, and the outermost transaction rolls everything back.
    """

    __slots__ = ("_conn", "_conns", "_doing", "_joined", "_locked", "_write")

    def __init__(self, conns: ThreadConnections, write: bool, doing: str) -> None:
        self._conns = conns
        self._write = write
        self._doing = doing
        self._conn: Connection | None = None
        self._locked = False
        self._joined = False

    def __enter__(self) -> Connection:
        conns = self._conns
        outer: Transaction | None = getattr(conns._local, "transaction", None)
        if outer is not None and outer._conn is not None:
            if self._write and not outer._write:
                raise RuntimeError("a write inside a read transaction: open the outer one for writing")
            self._joined = True
            self._conn = outer._conn
            return outer._conn
        conn = conns.get()
        self._conn = conn
        if conns.is_sqlite:
            if self._write:
                conns.sqlite_writer.acquire()
                self._locked = True
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE" if self._write else "BEGIN")
            except BaseException as exc:
                self._abort(conn)
                self._unlock()
                if isinstance(exc, sa_exc.SQLAlchemyError):
                    raise translate(exc, conns.shown, self._doing) from exc
                raise
        conns._local.transaction = self
        return conn

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        if self._joined:
            return  # the outermost transaction commits, or rolls back on the error now propagating
        conn = self._conn
        assert conn is not None
        self._conns._local.transaction = None
        try:
            if exc is None:
                try:
                    conn.commit()
                    return
                except sa_exc.SQLAlchemyError as error:
                    self._abort(conn)
                    raise translate(error, self._conns.shown, self._doing) from error
            self._abort(conn)
            if isinstance(exc, sa_exc.SQLAlchemyError):
                raise translate(exc, self._conns.shown, self._doing) from exc
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._locked:
            self._locked = False
            self._conns.sqlite_writer.release()

    def _abort(self, conn: Connection) -> None:
        try:
            conn.rollback()
        except sa_exc.SQLAlchemyError:
            self._conns.discard(conn)
            return
        if conn.invalidated:
            self._conns.discard(conn)


class DriverTransaction:
    """A SQLite write transaction on the driver's connection: yields a DB-API cursor.

    The same unit of work as ``Transaction(conns, True, doing)`` (the process's writer mutex, ``BEGIN
    IMMEDIATE``, commit on success, rollback on any error, errors translated to StorageError) without
    SQLAlchemy's transaction bookkeeping, which costs ~25 µs a transaction (BEGIN through
    ``exec_driver_sql``, and the commit's chain of calls): a third of a one-row prediction log append. The
    SQLAlchemy connection is left as it was found, outside any transaction. Statements run in the block
    must raise SQLAlchemy's exceptions (wrap the driver's with ``DBAPIError.instance``), as the prediction
    log's inserts do, so that callers can still tell a unique violation apart.
    """

    __slots__ = ("_conn", "_conns", "_cursor", "_doing", "_raw")

    def __init__(self, conns: ThreadConnections, doing: str) -> None:
        if not conns.is_sqlite:
            raise ValueError("DriverTransaction is for SQLite; use Transaction")
        self._conns = conns
        self._doing = doing

    def __enter__(self) -> Any:
        conns = self._conns
        conn = conns.get()
        if conn.in_transaction():  # never left so by Transaction; end it rather than write inside it
            conn.rollback()
        self._conn = conn
        self._raw = raw = driver_connection(conn)
        conns.sqlite_writer.acquire()
        try:
            self._cursor = cursor = raw.cursor()
            cursor.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            self._abort()
            conns.sqlite_writer.release()
            if isinstance(exc, sqlite3.Error):
                raise translate(_wrapped("BEGIN IMMEDIATE", exc), conns.shown, self._doing) from exc
            raise
        return cursor

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                try:
                    self._cursor.execute("COMMIT")
                    return
                except sqlite3.Error as error:
                    self._abort()
                    raise translate(_wrapped("COMMIT", error), self._conns.shown, self._doing) from error
            self._abort()
            if isinstance(exc, sa_exc.SQLAlchemyError):
                raise translate(exc, self._conns.shown, self._doing) from exc
        finally:
            with contextlib.suppress(Exception):
                self._cursor.close()
            self._conns.sqlite_writer.release()

    def _abort(self) -> None:
        try:
            self._raw.rollback()
        except Exception:
            self._conns.discard(self._conn)


def _wrapped(statement: str, exc: sqlite3.Error) -> sa_exc.StatementError:
    # a DBAPIError subclass at run time (exc is an sqlite3.Error); SQLAlchemy types instance() wider
    return sa_exc.DBAPIError.instance(statement, None, exc, sqlite3.Error, hide_parameters=True)
