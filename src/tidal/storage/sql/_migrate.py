"""Bring a database to the schema this code expects, when a store is opened.

The common case (the database is already at :data:`~tidal.storage.sql._schema.SCHEMA_REVISION`) costs
one SELECT and never imports Alembic. Otherwise the migration runs under a lock, so that two processes
opening the same fresh database at once do not both create the tables: SQLite takes its write lock with
``BEGIN IMMEDIATE`` (the second opener waits up to the busy timeout, then finds the schema in place);
PostgreSQL takes a transaction-scoped advisory lock. The revision is read again under the lock, and
the DDL and the ``alembic_version`` row commit in that same transaction.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from tidal.core.errors import StorageError
from tidal.storage.sql._engine import translate
from tidal.storage.sql._schema import SCHEMA_REVISION

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: Arbitrary, fixed key of the PostgreSQL advisory lock held while migrating.
_MIGRATION_LOCK_KEY = 0x7469_6461_6C00  # "tidal\0"

_SELECT_REVISION = sa.text("SELECT version_num FROM alembic_version")


def ensure_schema(conn: Connection, shown: str) -> None:
    """Upgrade the database behind ``conn`` to :data:`SCHEMA_REVISION` if it is not there yet."""
    if _revisions_fast(conn) == [SCHEMA_REVISION]:
        return
    try:
        _migrate_locked(conn, shown)
    except sa_exc.SQLAlchemyError as exc:
        _rollback(conn)
        raise translate(exc, shown, "migrating the schema") from exc
    except BaseException:
        _rollback(conn)
        raise


def _revisions_fast(conn: Connection) -> list[str] | None:
    """The revisions recorded in the database, or None when there is no version table (or no access)."""
    try:
        revisions = [row[0] for row in conn.execute(_SELECT_REVISION)]
        conn.rollback()
        return revisions
    except sa_exc.DBAPIError:
        # No such table (a fresh database); on PostgreSQL the failed statement also ended the
        # transaction, so roll back before the slow path starts a new one.
        _rollback(conn)
        return None


def _migrate_locked(conn: Connection, shown: str) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    current = _revisions_locked(conn)
    if current != [SCHEMA_REVISION]:
        _check_known(current, shown)
        _upgrade(conn)
        after = _revisions_locked(conn)
        if after != [SCHEMA_REVISION]:
            raise StorageError(
                f"migrating {shown} ended at revision {after}, but this tidal expects {SCHEMA_REVISION!r}",
                hint="this is a bug in tidal: SCHEMA_REVISION must name the newest migration",
            )
    conn.commit()


def _revisions_locked(conn: Connection) -> list[str]:
    # Inside the migration transaction a failing SELECT would abort it on PostgreSQL: look first.
    if not sa.inspect(conn).has_table("alembic_version"):
        return []
    return [row[0] for row in conn.execute(_SELECT_REVISION)]


def _check_known(revisions: list[str], shown: str) -> None:
    """Refuse a database migrated by a newer tidal: this code would misread it."""
    if not revisions:
        return
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    for revision in revisions:
        try:
            script.get_revision(revision)
        except CommandError as exc:
            raise StorageError(
                f"the store {shown} has schema revision {revision!r}, which this version of tidal does not "
                "know (it was written by a newer tidal)",
                hint="upgrade tidal (pip install -U tidal), or point TIDAL_STORE_URL at another store",
            ) from exc


def _upgrade(conn: Connection) -> None:
    # Imported here: Alembic costs tens of milliseconds to import, and only a migration needs it.
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # env.py runs the migrations on this connection, inside the transaction that holds the lock.
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def _rollback(conn: Connection) -> None:
    with contextlib.suppress(sa_exc.SQLAlchemyError):
        conn.rollback()
