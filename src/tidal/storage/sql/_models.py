"""Model versions, aliases and events in the SQL metadata store: the :class:`~tidal.core.ports.ModelStore`
part of :class:`~tidal.storage.sql.store.SqlMetadataStore`.

Read-modify-write is serialised: on SQLite by ``BEGIN IMMEDIATE``, on PostgreSQL by a transaction-scoped
advisory lock per model name (version numbers, aliases) and one for events (so event ids become visible
in increasing order, and ``since_id`` readers never skip one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidal.core.entities import Alias, Event, ModelState, ModelVersion
from tidal.storage import _codec as codec
from tidal.storage.sql import _schema as t
from tidal.storage.sql._base import SqlPart, upsert


class SqlModels(SqlPart):
    """Model versions numbered per name, aliases that point at them, and the event log."""

    def _prepare_models(self) -> None:
        self._upsert_alias = upsert(t.aliases, self.dialect, ["name", "alias"], update=True)

    def create_model_version(self, mv: ModelVersion) -> ModelVersion:
        """Store ``mv`` as the next version of ``mv.name`` (1, 2, ...); ``mv.version`` is ignored."""
        row = codec.encode_model_version(mv, 0)
        v = t.model_versions.c
        with self._write("registering a model version") as conn:
            self._lock(conn, f"model:{mv.name}")
            latest = conn.execute(sa.select(sa.func.max(v.version)).where(v.name == mv.name)).scalar()
            row["version"] = (latest or 0) + 1
            conn.execute(t.model_versions.insert(), row)
        return codec.decode_model_version(row)

    def update_model_version(
        self, name: str, version: int, *, state: ModelState | None = None,
        reasons: Sequence[str] | None = None, metrics: Mapping[str, float] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Change the given fields; ``metrics`` and ``info`` are merged into what is stored."""
        v = t.model_versions.c
        where = (v.name == name) & (v.version == version)
        with self._write("updating a model version") as conn:
            row = conn.execute(sa.select(t.model_versions).where(where).with_for_update()).mappings().first()
            if row is None:
                raise codec.no_model_version(name, version)
            changes = codec.model_version_changes(row, state=state, reasons=reasons, metrics=metrics,
                                                  info=info)
            if changes:
                conn.execute(t.model_versions.update().where(where).values(changes))
        return codec.decode_model_version({**row, **changes})

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        """Version ``version`` of model ``name``; ModelNotFound when unknown."""
        v = t.model_versions.c
        with self._read("reading a model version") as conn:
            row = conn.execute(
                sa.select(t.model_versions).where(v.name == name, v.version == version)
            ).mappings().first()
        if row is None:
            raise codec.no_model_version(name, version)
        return codec.decode_model_version(row)

    def list_model_versions(self, name: str | None = None, *, profiles: bool = True) -> list[ModelVersion]:
        """Ordered by name, then version. ``profiles=False``: the profile column is not even read (tens of KB a
        version, which decoding dominated the dashboard's list of versions), each ``profile`` is ``{}``."""
        v = t.model_versions.c
        columns = [c for c in t.model_versions.c if profiles or c.name != "profile"]
        query = sa.select(*columns).order_by(v.name, v.version)
        if name is not None:
            query = query.where(v.name == name)
        with self._read("listing model versions") as conn:
            return [codec.decode_model_version(r, profile=profiles) for r in conn.execute(query).mappings()]

    def set_alias(
        self, name: str, alias: str, version: int, at: datetime, *, expected: int | None = None,
    ) -> int | None:
        """Point ``alias`` at an existing ``version`` (else ModelNotFound); returns the version it pointed at.
        ``expected``: only if the alias points there now (0: nowhere), else AliasMoved (see the port)."""
        v, a = t.model_versions.c, t.aliases.c
        row = {"name": name, "alias": alias, "version": int(version), "updated_at": codec.utc(at)}
        with self._write("moving an alias") as conn:
            self._lock(conn, f"model:{name}")
            exists = sa.select(sa.literal(1)).where(v.name == name, v.version == version)
            if conn.execute(exists).first() is None:
                raise codec.no_model_version(name, version)
            previous = conn.execute(sa.select(a.version).where(a.name == name, a.alias == alias)).scalar()
            codec.check_expected_alias(name, alias, previous, expected)
            conn.execute(self._upsert_alias, row)
        return previous

    def get_alias(self, name: str, alias: str) -> Alias | None:
        """The alias ``alias`` of model ``name``, or None."""
        a = t.aliases.c
        with self._read("reading an alias") as conn:
            query = sa.select(t.aliases).where(a.name == name, a.alias == alias)
            row = conn.execute(query).mappings().first()
        return None if row is None else codec.decode_alias(row)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove the alias; removing one that does not exist is a no-op."""
        a = t.aliases.c
        with self._write("deleting an alias") as conn:
            conn.execute(t.aliases.delete().where(a.name == name, a.alias == alias))

    def list_aliases(self, name: str | None = None) -> list[Alias]:
        """Ordered by model name, then alias."""
        a = t.aliases.c
        query = sa.select(t.aliases).order_by(a.name, a.alias)
        if name is not None:
            query = query.where(a.name == name)
        with self._read("listing aliases") as conn:
            return [codec.decode_alias(r) for r in conn.execute(query).mappings()]

    # -- events ----------------------------------------------------------------------------------------------

    def append_event(self, event: Event) -> Event:
        """Store the event (its ``id`` is ignored); returns it with its new, increasing id."""
        row = codec.encode_event(event)
        with self._write("recording an event") as conn:
            self._lock(conn, "events")
            row["id"] = conn.execute(t.events.insert(), row).inserted_primary_key[0]  # type: ignore[index]
        return codec.decode_event(row)

    def list_events(
        self, *, subject: str | None = None, kind: str | None = None, since_id: int | None = None,
        limit: int = 100,
    ) -> list[Event]:
        """Oldest first among the newest ``limit`` matches; ``subject`` ending in ``*`` is a prefix."""
        if limit <= 0:
            return []
        e = t.events.c
        query = sa.select(t.events).order_by(e.id.desc()).limit(limit)
        if subject is not None:
            prefix = codec.subject_prefix(subject)
            if prefix is None:
                query = query.where(e.subject == subject)
            elif prefix:
                query = query.where(e.subject.startswith(prefix, autoescape=True),
                                    sa.func.substr(e.subject, 1, len(prefix)) == prefix)
        if kind is not None:
            query = query.where(e.kind == kind)
        if since_id is not None:
            query = query.where(e.id > since_id)
        with self._read("listing events") as conn:
            rows = conn.execute(query).mappings().all()
        return [codec.decode_event(r) for r in reversed(rows)]


__all__ = ["SqlModels"]
