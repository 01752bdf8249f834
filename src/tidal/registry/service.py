"""The model registry: versions, states, aliases and loading, over the MetadataStore and ArtifactStore.

Every state change and alias move is recorded as an Event with its reason, so "why is version 7
serving?" always has an answer.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from tidal.core.entities import Event, ModelState, ModelVersion
from tidal.core.errors import AliasConflict, ArtifactNotFound, IntegrityError, ModelNotFound
from tidal.core.ports import ArtifactStore, Clock, MetadataStore
from tidal.evaluate.gate import GateDecision
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

    # below this method, `list` in an annotation names it: the builtin is spelled builtins.list there
    def list(self, name: str | None = None) -> list[ModelVersion]:
        return self.store.list_model_versions(name)

    def champion(self, name: str) -> ModelVersion | None:
        alias = self.store.get_alias(name, CHAMPION)
        return self.get(name, alias.version) if alias else None

    def aliases_of(self, name: str, version: int) -> builtins.list[str]:
        return sorted(a.alias for a in self.store.list_aliases(name) if a.version == version)

    def find_by_artifact(self, name: str, digest: str, holdout: str | None = None) -> ModelVersion | None:
        """The newest version of ``name`` made from this artifact digest (and holdout snapshot, if given):
        stored under it, or refitted from the model that passed the gate under it (``lineage.gated_model``)."""
        for mv in reversed(self.store.list_model_versions(name)):
            same = digest in (mv.artifact_digest, mv.lineage.gated_model)
            if same and (holdout is None or mv.lineage.holdout == holdout):
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

    def register_gated(
        self, mv: ModelVersion, decision: GateDecision, *, alias: str | None, over: int | None, trigger: str,
        run_id: str, note: str = "",
    ) -> ModelVersion:
        """Register ``mv`` as its gate ``decision`` says (validated or rejected, with the ``gate.passed`` or
        ``gate.failed`` event) and, if it passed and ``alias`` is given, point ``alias`` at it: all in one
        transaction. A champion move is made only over the champion the decision compared it with
        (``over``; None: there was none), else :class:`~tidal.core.errors.AliasMoved` and nothing is stored.
        ``note`` is added to the alias move's reason.
        """
        why = "; ".join(decision.reasons) if decision.reasons else "no gates configured"
        with self.store.atomic():
            stored = self.register(mv, reason=f"run {run_id[:8]} ({why})")
            label = f"{stored.name}:{stored.version}"
            if not decision.passed:
                self.event("gate.failed", stored.name, stored.version,
                           f"{label} rejected: {'; '.join(decision.failed)}", decision.to_dict())
                return stored
            self.event("gate.passed", stored.name, stored.version, f"{label} passed the gate: {why}",
                       decision.to_dict())
            if alias is not None:
                self.set_alias(stored.name, alias, stored.version, trigger=trigger, data={"run_id": run_id},
                               reason=f"passed the gate in run {run_id[:8]}{note}",
                               expected=(over or 0) if alias == CHAMPION else None)
        return stored

    def champion_history(self, name: str) -> builtins.list[int]:
        """The champions of ``name`` as a stack, oldest first, the current one last: every champion move
        pushes the version it made champion; a rollback pops back to the version it restored."""
        stack: builtins.list[int] = []
        for event in self.store.list_events(subject=f"{subject(name)}:*", kind="alias.moved", limit=1_000_000):
            data = event.data
            if data.get("alias") != CHAMPION:
                continue
            to = int(data["to"])
            if data.get("rollback") and to in stack:
                del stack[len(stack) - stack[::-1].index(to):]
            else:
                stack.append(to)
        return stack

    def rollback(
        self, name: str, *, reason: str, trigger: str = "manual", to: int | None = None, expected: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> int:
        """Move ``champion`` back one step in its history (:meth:`champion_history`), skipping versions that
        can no longer serve, or to ``to``; ``expected``: only if the champion is that version now. Returns
        the version it points at afterwards; ModelNotFound when there is nothing to roll back to."""
        current = self.store.get_alias(name, CHAMPION)
        if current is None:
            raise ModelNotFound(f"model {name!r} has no champion to roll back",
                                hint="run `tidal models ls` to see the models")
        if to is None:
            history = self.champion_history(name)
            if not history or history[-1] != current.version:
                history.append(current.version)
            earlier = [v for v in history[:-1] if v != current.version and self.get(name, v).state in SERVABLE]
            if not earlier:
                raise ModelNotFound(f"{name}:{current.version} is the first champion: there is nothing to roll "
                                    "back to", hint="promote another version with `tidal promote`")
            to = earlier[-1]
        self.set_alias(name, CHAMPION, to, reason=reason, trigger=trigger, data={"rollback": True, **(data or {})},
                       expected=current.version if expected is None else expected)
        return to

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
