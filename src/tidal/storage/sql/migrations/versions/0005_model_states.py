"""Model states as the lifecycle names them: prototype → validated | rejected → deployed → monitored → improved |
retired.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

No table changes shape: ``model_versions.state`` keeps its text column; what changes is the values. Today's
states are mapped: ``candidate`` is now called ``prototype``; a version the ``champion`` alias points at
was left ``validated`` by earlier versions of tidal although it serves, so it becomes ``deployed``; every
other state keeps its value (``validated``, ``rejected``, ``deployed``, ``retired``). Each change is
recorded as a ``model.state`` event with its reason, as every state change is from this revision on. The
downgrade maps the states earlier tidal does not know back to the nearest ones it does (``prototype`` →
``candidate``, ``monitored`` → ``deployed``, ``improved`` → ``retired``) and keeps the events (an earlier
tidal shows them as any other event). As in the earlier revisions, column types are written out here, frozen.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)

_versions = sa.table("model_versions", sa.column("name", sa.Text), sa.column("version", sa.Integer),
                     sa.column("state", sa.Text))
_aliases = sa.table("aliases", sa.column("name", sa.Text), sa.column("alias", sa.Text),
                    sa.column("version", sa.Integer))
_events = sa.table("events", sa.column("kind", sa.Text), sa.column("subject", sa.Text),
                   sa.column("message", sa.Text), sa.column("time", TIME), sa.column("data", sa.Text))

_DOWN = {"prototype": "candidate", "monitored": "deployed", "improved": "retired"}


def _move(conn: sa.Connection, name: str, version: int, old: str, new: str, reason: str, now: datetime) -> None:
    v = _versions.c
    conn.execute(_versions.update().where(v.name == name, v.version == version).values(state=new))
    conn.execute(_events.insert().values(
        kind="model.state", subject=f"model:{name}:{version}", message=f"{name}:{version} {old} → {new}: {reason}",
        time=now, data=json.dumps({"from": old, "to": new, "reason": reason, "migration": revision})))


def upgrade() -> None:
    conn = op.get_bind()
    now = datetime.now(UTC)
    v, a = _versions.c, _aliases.c
    for name, version in conn.execute(sa.select(v.name, v.version).where(v.state == "candidate")
                                      .order_by(v.name, v.version)).all():
        _move(conn, name, version, "candidate", "prototype",
              "store migrated (revision 0005): 'candidate' is now called 'prototype' (trained, not yet gated)", now)
    champions = sa.select(v.name, v.version).select_from(
        _versions.join(_aliases, (a.name == v.name) & (a.version == v.version))
    ).where(a.alias == "champion", v.state == "validated").order_by(v.name, v.version)
    for name, version in conn.execute(champions).all():
        _move(conn, name, version, "validated", "deployed",
              "store migrated (revision 0005): it is the champion, so it serves", now)


def downgrade() -> None:
    conn = op.get_bind()
    v = _versions.c
    for new, old in _DOWN.items():
        conn.execute(_versions.update().where(v.state == new).values(state=old))
