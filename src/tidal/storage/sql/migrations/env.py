"""Alembic environment for the tidal metadata store.

tidal runs migrations itself when a store is opened (``tidal.storage.sql._migrate``): it passes its own
connection, already inside a locked transaction, as ``config.attributes["connection"]``, and the
migrations join that transaction. For development (``alembic revision --autogenerate``) a URL in the
``sqlalchemy.url`` option works too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from tidal.storage.sql._schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    # Joins the caller's transaction when there is one (the normal case), so the schema change and the
    # alembic_version row commit together or not at all.
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url (alembic -x is not used) or pass a connection in attributes")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
