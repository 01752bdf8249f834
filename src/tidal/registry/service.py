"""The model registry: versions, states, aliases and loading, over the MetadataStore and ArtifactStore.

Every state change and alias move is recorded as an Event with its reason, so "why is version 7
serving?" always has an answer.

A version's state (:class:`~tidal.core.entities.ModelState`) moves here, each move a ``model.state`` event
committed with it: registration records ``prototype`` (at the time it was trained) and the gate's verdict
(``validated`` | ``rejected``); an alias move that makes a version serve makes it ``deployed`` and takes the
version it replaces out of service (``improved`` when the new version's retrain was triggered while the old
one served, which its lineage says in ``extra["triggered_by"]``; ``retired`` otherwise, and always on a
rollback). ``monitored`` is set by the first monitoring report on a deployed version's live traffic
(:func:`tidal.loop.monitoring.monitor_once`).
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tidal.core.entities import Event, ModelState, ModelVersion
from tidal.core.errors import AliasConflict, ArtifactNotFound, IntegrityError, ModelNotFound, TidalError
from tidal.core.ports import ArtifactStore, Clock, MetadataStore
from tidal.evaluate.gate import GateDecision
from tidal.train.flavors import get_flavor

CHAMPION = "champion"
CHALLENGER = "challenger"
#: the states a version may be given a serving alias in: it passed its gate (and, when it served before,
#: was only taken out of service: a rollback or a promotion by hand may bring it back)
SERVABLE = frozenset({ModelState.VALIDATED, ModelState.DEPLOYED, ModelState.MONITORED, ModelState.IMPROVED,
                      ModelState.RETIRED})
#: the states of a version in service
LIVE = frozenset({ModelState.DEPLOYED, ModelState.MONITORED})
#: the kind of the event that records every state change of a version
STATE_EVENT = "model.state"


@dataclass(frozen=True)
class Transition:
    """One move of a version's state: when, from what (None: it did not exist before), to what, and why."""

    time: datetime
    from_state: str | None
    to: str
    reason: str
    event_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time.isoformat(), "from": self.from_state, "to": self.to, "reason": self.reason,
                "event": self.event_id}


@dataclass(frozen=True)
class Serving:
    """Why a version serves (or does not): its serving aliases, the move that put it there, and the trigger
    of the retrain that made it, back to the version that served then."""

    serving: bool
    aliases: list[str]
    since: datetime | None = None
    because: str | None = None
    triggered_by: dict[str, Any] | None = None
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"serving": self.serving, "aliases": self.aliases,
                "since": None if self.since is None else self.since.isoformat(), "because": self.because,
                "triggered_by": self.triggered_by, "text": self.text}


def triggered_by(mv: ModelVersion) -> dict[str, Any] | None:
    """The retrain that made ``mv``, when the loop made it: the version serving then (``name``,
    ``version``), the ``trigger``, its reasons (``why``), the ``loop.retrain`` event and its time; None
    for a version trained otherwise (``tidal run``, the SDK)."""
    parent = mv.lineage.extra.get("triggered_by")
    return dict(parent) if isinstance(parent, dict) and parent.get("version") is not None else None


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
            known = sorted({mv.version for mv in self.store.list_model_versions(name, profiles=False)})
            hint = (f"{name} has versions {', '.join(map(str, known))}" if known
                    else "run `tidal models ls` to see the registered models")
            raise ModelNotFound(f"model {name!r} has no version {version}", hint=hint) from None

    def resolve(self, name: str, ref: int | str | None = None) -> ModelVersion:
        """A version by number, alias (``champion``), ``latest`` or None (champion, else latest)."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            return self.get(name, int(ref))
        # without profiles: a model with many versions is resolved by reading one profile, not all of them
        versions = self.store.list_model_versions(name, profiles=False)
        if not versions:
            raise ModelNotFound(f"no model named {name!r}", hint="run `tidal models ls` to see the models")
        if ref == "latest":
            return self.get(name, versions[-1].version)
        alias = self.store.get_alias(name, ref or CHAMPION)
        if alias is None:
            if ref is None:
                return self.get(name, versions[-1].version)
            raise ModelNotFound(f"model {name!r} has no alias {ref!r}",
                                hint="use a version number, 'latest' or an alias set with `tidal promote`")
        return self.get(name, alias.version)

    # below this method, `list` in an annotation names it: the builtin is spelled builtins.list there
    def list(self, name: str | None = None, *, profiles: bool = True) -> list[ModelVersion]:
        """Every version (of ``name``), by name then version; ``profiles=False``: each ``profile`` left empty."""
        return self.store.list_model_versions(name, profiles=profiles)

    def champion(self, name: str) -> ModelVersion | None:
        alias = self.store.get_alias(name, CHAMPION)
        return self.get(name, alias.version) if alias else None

    def aliases_of(self, name: str, version: int) -> builtins.list[str]:
        return sorted(a.alias for a in self.store.list_aliases(name) if a.version == version)

    def history(self, name: str, version: int) -> builtins.list[Transition]:
        """Every move of ``name:version``'s state, oldest first (its ``model.state`` events). A version
        registered before tidal recorded them shows its registration and any state change recorded then."""
        events = self.store.list_events(subject=subject(name, version), limit=100_000)
        moves = [e for e in events if e.kind == STATE_EVENT]
        if not moves:  # recorded by a tidal before states: ``model.registered``, ``model.<state>``
            moves = [e for e in events if e.kind == "model.registered"
                     or (e.kind.startswith("model.") and "to" in e.data and "from" in e.data)]
        out: builtins.list[Transition] = []
        for e in moves:
            if e.kind == "model.registered":
                out.append(Transition(e.time, None, str(e.data.get("state", "")), e.message, e.id, dict(e.data)))
                continue
            reason = e.data.get("reason")
            if reason is None:
                reason = "; ".join(map(str, e.data.get("reasons") or [])) or e.message
            out.append(Transition(e.time, None if e.data.get("from") is None else str(e.data["from"]),
                                  str(e.data.get("to")), str(reason), e.id, dict(e.data)))
        return out  # in the order recorded (the prototype step is dated when trained, but recorded first)

    def serving(self, name: str, version: int) -> Serving:
        """Why ``name:version`` serves (or why not), in one sentence and as data: the alias move that put it
        in service and, when a retrain made it, the trigger of that retrain and the version serving then."""
        mv = self.get(name, version)
        aliases = [a for a in self.aliases_of(name, version) if a in (CHAMPION, CHALLENGER)]
        live = CHAMPION in aliases or (CHALLENGER in aliases and mv.state in LIVE)
        parent = triggered_by(mv)
        origin = self._origin(mv, parent)
        label = f"{name}:{version}"
        if not live:
            last = self.history(name, version)
            why = f" ({last[-1].reason})" if last else ""
            return Serving(False, aliases, triggered_by=parent, text=f"{label} is {mv.state.value}{why}; {origin}")
        role = CHAMPION if CHAMPION in aliases else CHALLENGER
        moves = [e for e in self.store.list_events(subject=subject(name, version), kind="alias.moved", limit=100_000)
                 if e.data.get("alias") == role and e.data.get("to") == version]
        move = moves[-1] if moves else None
        because = None if move is None else str(move.data.get("reason") or move.message)
        since = None if move is None else move.time
        text = (f"{label} serves as {role}" + (f" since {since.isoformat(timespec='seconds')}" if since else "")
                + (f": {because}" if because else "") + f"; {origin}")
        return Serving(True, aliases, since=since, because=because, triggered_by=parent, text=text)

    def _origin(self, mv: ModelVersion, parent: dict[str, Any] | None) -> str:
        """Where ``mv`` comes from, in words: the retrain trigger and the version it replaced, or its run."""
        if parent is not None:
            at = parent.get("time")
            return (f"trained by the retrain that {parent.get('name', mv.name)}:{parent.get('version')} triggered"
                    + (f" at {at}" if at else "") + f": {parent.get('why') or parent.get('trigger')}")
        if mv.lineage.extra.get("origin"):  # Workspace.models.register: a model the user fitted in their own code
            return f"{mv.lineage.extra['origin']}, registered by run {mv.run_id[:8]}"
        trigger = None
        if mv.run_id:
            try:
                trigger = self.store.get_run(mv.run_id).trigger
            except TidalError:  # a run tracked elsewhere, or removed
                trigger = None
        if trigger is None:
            return "registered outside a run"
        return f"trained by run {mv.run_id[:8]} (trigger: {trigger})"

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

    def register(self, mv: ModelVersion, *, reason: str, trained_at: datetime | None = None) -> ModelVersion:
        """Store a new version (its number is assigned here) in ``mv.state`` and record why. Its history
        starts as a ``prototype`` at ``trained_at`` (default: ``mv.created_at``), then the move to its state
        (validated or rejected, with ``reason``), all in one transaction."""
        with self.store.atomic():
            stored = self._create(mv, reason=reason, trained_at=trained_at)
            self._gated(stored, reason)
        return stored

    def _create(self, mv: ModelVersion, *, reason: str, trained_at: datetime | None) -> ModelVersion:
        stored = self.store.create_model_version(mv)
        label = f"{stored.name}:{stored.version}"
        run = f"run {stored.run_id[:8]}" if stored.run_id else "outside a run"
        self.event(STATE_EVENT, stored.name, stored.version, f"{label} → prototype: trained ({run})",
                   {"from": None, "to": ModelState.PROTOTYPE.value, "reason": f"trained ({run})",
                    "run_id": stored.run_id}, at=trained_at or stored.created_at)
        self._event("model.registered", stored.name, stored.version,
                    f"{label} registered as {stored.state.value}: {reason}",
                    {"state": stored.state.value, "run_id": stored.run_id, "reasons": stored.reasons})
        return stored

    def _gated(self, stored: ModelVersion, reason: str) -> None:
        """The gate's move of a new version: prototype → its stored state (none if it stays a prototype)."""
        if stored.state is ModelState.PROTOTYPE:
            return
        why = "; ".join(stored.reasons) if stored.state is ModelState.REJECTED and stored.reasons else reason
        self._state_event(stored.name, stored.version, ModelState.PROTOTYPE.value, stored.state, why, {})

    def set_state(self, name: str, version: int, state: ModelState, reasons: Sequence[str] = ()) -> ModelVersion:
        """Move a version to ``state`` and store ``reasons`` with it (why it was rejected), with its event."""
        return self.transition(name, version, state, reason="; ".join(reasons) or f"set to {state.value}",
                               reasons=reasons)

    def transition(
        self, name: str, version: int, to: ModelState, *, reason: str, data: dict[str, Any] | None = None,
        only_from: Collection[ModelState] | None = None, reasons: Sequence[str] | None = None,
    ) -> ModelVersion:
        """Move ``name:version`` to state ``to`` with a ``model.state`` event that says why, in one
        transaction. Nothing happens when it is in ``to`` already, or (``only_from``) in another state than
        those. ``reasons``: also store these as the version's reasons (why it was rejected)."""
        with self.store.atomic():
            before = self.get(name, version)
            if (before.state == to and reasons is None) or (only_from is not None and before.state not in only_from):
                return before
            mv = self.store.update_model_version(name, version, state=to,
                                                 reasons=None if reasons is None else list(reasons))
            if before.state != to:
                self._state_event(name, version, before.state.value, to, reason, data or {})
        return mv

    def _state_event(self, name: str, version: int, before: str | None, to: ModelState, reason: str,
                     data: dict[str, Any]) -> None:
        self._event(STATE_EVENT, name, version, f"{name}:{version} {before} → {to.value}: {reason}",
                    {"from": before, "to": to.value, "reason": reason, **data})

    def set_alias(
        self, name: str, alias: str, version: int, *, reason: str, trigger: str = "manual",
        data: dict[str, Any] | None = None, expected: int | None = None, serves: bool | None = None,
    ) -> int | None:
        """Point ``alias`` at ``version``, with its ``alias.moved`` event, in one transaction; a prototype or
        rejected version can never be champion or challenger. ``expected``: only if the alias still points
        at that version (0: at none), else :class:`~tidal.core.errors.AliasMoved` and nothing changes.

        ``serves``: whether the alias puts the version in service (default: only ``champion`` does; a
        ``challenger`` serves under a canary or shadow strategy, which the caller knows). A version put in
        service becomes ``deployed``, and the champion it replaces ``improved`` or ``retired``
        (:meth:`_replaced`), each with its ``model.state`` event, in the same transaction."""
        with self.store.atomic():
            mv = self.get(name, version)
            if alias in (CHAMPION, CHALLENGER) and mv.state not in SERVABLE:
                raise AliasConflict(
                    f"{name}:{version} is {mv.state.value} and cannot be {alias}",
                    hint="only a version that passed its gate can serve"
                    + (f" (rejected because: {'; '.join(mv.reasons)})" if mv.reasons else ""))
            previous = self.store.set_alias(name, alias, version, self.clock.now(), expected=expected)
            if previous == version:
                return previous
            moved = f"{alias} of {name}: " + (f"{previous} → {version}" if previous else f"set to {version}")
            self._event("alias.moved", name, version, f"{moved} ({reason})",
                        {"alias": alias, "from": previous, "to": version, "reason": reason, "trigger": trigger,
                         **(data or {})})
            if serves if serves is not None else alias == CHAMPION:
                self.transition(name, version, ModelState.DEPLOYED, only_from=SERVABLE - LIVE,
                                reason=(f"restored as {alias} by a rollback: {reason}" if (data or {}).get("rollback")
                                        else f"serving as {alias}: {reason}"),
                                data={"alias": alias, "trigger": trigger})
            if alias == CHAMPION and previous is not None:
                self._replaced(name, previous, mv, reason=reason, trigger=trigger,
                               rollback=bool((data or {}).get("rollback")))
        return previous

    def _replaced(self, name: str, old: int, new: ModelVersion, *, reason: str, trigger: str, rollback: bool) -> None:
        """``name:old`` was champion and ``new`` took its place: ``improved`` when ``new`` was trained by a
        retrain that ``old`` triggered while it served (``new.lineage.extra["triggered_by"]``), ``retired``
        otherwise (a rollback, a promotion by hand, a ``tidal run``)."""
        if old in {a.version for a in self.store.list_aliases(name) if a.alias in (CHAMPION, CHALLENGER)}:
            return  # it still serves under another alias
        parent = triggered_by(new)
        data = {"by": new.version, "trigger": trigger}
        if rollback:
            self.transition(name, old, ModelState.RETIRED, only_from=SERVABLE,
                            reason=f"rolled back to {name}:{new.version}: {reason}", data=data)
        elif parent is not None and parent.get("version") == old and parent.get("name", name) == name:
            why = parent.get("why") or parent.get("trigger") or "a retrain"
            self.transition(name, old, ModelState.IMPROVED, only_from=SERVABLE, data={**data, "triggered_by": parent},
                            reason=f"replaced by {name}:{new.version}, trained by the retrain it triggered ({why})")
        else:
            how = (f"a retrain triggered while {name}:{parent.get('version')} served" if parent is not None
                   else f"a manual promotion ({reason})" if trigger == "manual"
                   else f"trigger {trigger}: {reason}")
            self.transition(name, old, ModelState.RETIRED, only_from=SERVABLE, data=data,
                            reason=f"replaced by {name}:{new.version}, which it did not lead to ({how})")

    def register_gated(
        self, mv: ModelVersion, decision: GateDecision, *, alias: str | None, over: int | None, trigger: str,
        run_id: str, note: str = "", trained_at: datetime | None = None, serves: bool | None = None,
    ) -> ModelVersion:
        """Register ``mv`` as its gate ``decision`` says (validated or rejected, with the ``gate.passed`` or
        ``gate.failed`` event) and, if it passed and ``alias`` is given, point ``alias`` at it: all in one
        transaction. A champion move is made only over the champion the decision compared it with
        (``over``; None: there was none), else :class:`~tidal.core.errors.AliasMoved` and nothing is stored.
        ``note`` is added to the alias move's reason. ``trained_at``: when the model was trained (its
        ``prototype`` state; default: ``mv.created_at``); ``serves``: as in :meth:`set_alias`.
        Returns the version as stored at the end (``deployed`` when ``alias`` put it in service).
        """
        why = "; ".join(decision.reasons) if decision.reasons else "no gates configured"
        with self.store.atomic():
            stored = self._create(mv, reason=f"run {run_id[:8]} ({why})", trained_at=trained_at)
            label = f"{stored.name}:{stored.version}"
            if not decision.passed:
                self.event("gate.failed", stored.name, stored.version,
                           f"{label} rejected: {'; '.join(decision.failed)}", decision.to_dict())
                self._gated(stored, "; ".join(decision.failed))
                return stored
            self.event("gate.passed", stored.name, stored.version, f"{label} passed the gate: {why}",
                       decision.to_dict())
            self._gated(stored, f"passed the gate in run {run_id[:8]} ({why})")
            if alias is not None:
                self.set_alias(stored.name, alias, stored.version, trigger=trigger, data={"run_id": run_id},
                               reason=f"passed the gate in run {run_id[:8]}{note}",
                               expected=(over or 0) if alias == CHAMPION else None, serves=serves)
                stored = self.get(stored.name, stored.version)
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

    def event(self, kind: str, name: str, version: int | None, message: str, data: dict[str, Any],
              *, at: datetime | None = None) -> Event:
        """Record an event about a model (``version`` None) or one of its versions (at ``at``: default now)."""
        return self.store.append_event(Event(kind=kind, subject=subject(name, version), message=message,
                                             time=at or self.clock.now(), data=data))

    def _event(self, kind: str, name: str, version: int, message: str, data: dict[str, Any]) -> None:
        self.event(kind, name, version, message, data)
