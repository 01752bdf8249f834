"""The model registry: versions, states, aliases and loading, over the MetadataStore and ArtifactStore.

Every state change and alias move is recorded as an Event with its reason, so "why is version 7
serving?" always has an answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tidal.core.entities import Event, ModelState, ModelVersion
from tidal.core.errors import AliasConflict, ArtifactNotFound, IntegrityError, ModelNotFound
from tidal.core.ports import ArtifactStore, Clock, MetadataStore
from tidal.train.flavors import get_flavor

CHAMPION = "champion"
CHALLENGER = "challenger"
SERVABLE = frozenset({ModelState.VALIDATED, ModelState.DEPLOYED})


def subject(name: str, version: int | None = None) -> str:
    """The event subject of a model or a model version."""
    return f"model:{name}" if version is None else f"model:{name}:{version}"


class Registry:
    """Model versions of every model in a workspace."""

    def __init__(self, store: MetadataStore, artifacts: ArtifactStore, clock: Clock) -> None:
        self.store = store
        self.artifacts = artifacts
        self.clock = clock

    # -- reading --------------------------------------------------------------------------------
    def get(self, name: str, version: int) -> ModelVersion:
        try:
            return self.store.get_model_version(name, version)
        except ModelNotFound:
            known = sorted({mv.version for mv in self.store.list_model_versions(name)})
            hint = (f"{name} has versions {', '.join(map(str, known))}" if known
                    else "run `tidal models ls` to see the registered models")
            raise ModelNotFound(f"model {name!r} has no version {version}", hint=hint) from None

    def resolve(self, name: str, ref: int | str | None = None) -> ModelVersion:
        """A version by number, alias (``champion``), ``latest`` or None (champion, else latest)."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            return self.get(name, int(ref))
        versions = self.store.list_model_versions(name)
        if not versions:
            raise ModelNotFound(f"no model named {name!r}", hint="run `tidal models ls` to see the models")
        if ref == "latest":
            return versions[-1]
        alias = self.store.get_alias(name, ref or CHAMPION)
        if alias is None:
            if ref is None:
                return versions[-1]
            raise ModelNotFound(f"model {name!r} has no alias {ref!r}",
                                hint="use a version number, 'latest' or an alias set with `tidal promote`")
        return self.get(name, alias.version)

    def list(self, name: str | None = None) -> list[ModelVersion]:
        return self.store.list_model_versions(name)

    def champion(self, name: str) -> ModelVersion | None:
        alias = self.store.get_alias(name, CHAMPION)
        return self.get(name, alias.version) if alias else None

    def aliases_of(self, name: str, version: int) -> list[str]:
        return sorted(a.alias for a in self.store.list_aliases(name) if a.version == version)

    def find_by_artifact(self, name: str, digest: str, holdout: str | None = None) -> ModelVersion | None:
        """The newest version of ``name`` made from this artifact digest (and holdout snapshot, if given):
        stored under it, or refitted from the model that passed the gate under it (``lineage.gated_model``)."""
        for mv in reversed(self.store.list_model_versions(name)):
            same = digest in (mv.artifact_digest, mv.lineage.get("gated_model"))
            if same and (holdout is None or mv.lineage.get("holdout") == holdout):
                return mv
        return None

    def load(self, mv: ModelVersion) -> Any:
        """The model object of ``mv``, verified against its digest; never unpickles."""
        try:
            data = self.artifacts.get(mv.artifact_digest)
        except ArtifactNotFound:
            raise IntegrityError(
                f"the artifact of {mv.name}:{mv.version} ({mv.artifact_digest[:12]}) is missing from the "
                f"artifact store {self.artifacts.url}",
                hint="restore the artifact folder, or re-run `tidal run` to train it again") from None
        except IntegrityError as exc:
            raise IntegrityError(f"the artifact of {mv.name}:{mv.version} was modified or corrupted: {exc.message}",
                                 hint="re-run `tidal run` to train it again, or restore it from a backup") from exc
        return get_flavor(mv.info.get("flavor", "sklearn")).load(data)

    # -- writing --------------------------------------------------------------------------------
    # Each change and the event that explains it commit in one transaction (store.atomic): a process killed
    # between the two leaves both or neither, never a moved alias without its record.

    def register(self, mv: ModelVersion, *, reason: str) -> ModelVersion:
        """Store a new version (its number is assigned here) and record why."""
        with self.store.atomic():
            stored = self.store.create_model_version(mv)
            self._event("model.registered", stored.name, stored.version,
                        f"{stored.name}:{stored.version} registered as {stored.state.value}: {reason}",
                        {"state": stored.state.value, "run_id": stored.run_id, "reasons": stored.reasons})
        return stored

    def set_state(self, name: str, version: int, state: ModelState, reasons: Sequence[str] = ()) -> ModelVersion:
        with self.store.atomic():
            before = self.get(name, version)
            mv = self.store.update_model_version(name, version, state=state, reasons=list(reasons))
            self._event(f"model.{state.value}", name, version,
                        f"{name}:{version} {before.state.value} → {state.value}"
                        + (f": {'; '.join(reasons)}" if reasons else ""),
                        {"from": before.state.value, "to": state.value, "reasons": list(reasons)})
        return mv

    def set_alias(
        self, name: str, alias: str, version: int, *, reason: str, trigger: str = "manual",
        data: dict[str, Any] | None = None, expected: int | None = None,
    ) -> int | None:
        """Point ``alias`` at ``version``, with its ``alias.moved`` event, in one transaction; a rejected or
        retired version can never be champion. ``expected``: only if the alias still points at that version
        (0: at none), else :class:`~tidal.core.errors.AliasMoved` and nothing changes."""
        with self.store.atomic():
            mv = self.get(name, version)
            if alias in (CHAMPION, CHALLENGER) and mv.state not in SERVABLE:
                raise AliasConflict(
                    f"{name}:{version} is {mv.state.value} and cannot be {alias}",
                    hint="only validated or deployed versions can serve"
                    + (f" (rejected because: {'; '.join(mv.reasons)})" if mv.reasons else ""))
            previous = self.store.set_alias(name, alias, version, self.clock.now(), expected=expected)
            if previous == version:
                return previous
            moved = f"{alias} of {name}: " + (f"{previous} → {version}" if previous else f"set to {version}")
            self._event("alias.moved", name, version, f"{moved} ({reason})",
                        {"alias": alias, "from": previous, "to": version, "reason": reason, "trigger": trigger,
                         **(data or {})})
        return previous

    def remove_alias(self, name: str, alias: str, *, reason: str, trigger: str = "manual") -> int | None:
        """Remove ``alias`` (with an ``alias.removed`` event, in one transaction); returns where it pointed."""
        with self.store.atomic():
            current = self.store.get_alias(name, alias)
            if current is None:
                return None
            self.store.delete_alias(name, alias)
            self._event("alias.removed", name, current.version, f"{alias} of {name} removed from {current.version} "
                        f"({reason})", {"alias": alias, "from": current.version, "reason": reason, "trigger": trigger})
        return current.version

    def event(self, kind: str, name: str, version: int | None, message: str, data: dict[str, Any]) -> Event:
        """Record an event about a model (``version`` None) or one of its versions."""
        return self.store.append_event(Event(kind=kind, subject=subject(name, version), message=message,
                                             time=self.clock.now(), data=data))

    def _event(self, kind: str, name: str, version: int, message: str, data: dict[str, Any]) -> None:
        self.event(kind, name, version, message, data)
