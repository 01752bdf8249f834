"""The loop's controls, as the workspace offers them: ``ws.loop`` (``tidal loop --status/--pause/--resume/
--retrain-now``, ``/api/v1/loop``).

Pausing, resuming and asking for a retrain write the loop's stored state (:class:`tidal.loop.state.LoopState`)
and an event naming who did it, in one transaction. A paused controller ticks but does nothing, and says
so in its tick's note; a requested retrain is started by the next tick, with the trigger ``manual``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tidal.core.entities import Event
from tidal.loop.state import LoopState, state_key
from tidal.workspace.tokens import local_actor

if TYPE_CHECKING:
    from tidal.workspace import Workspace


class LoopControl:
    """Read and steer the closed loop of a workspace (``ws.loop``)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    @property
    def _key(self) -> str:
        return state_key(self._ws.spec.name)

    def _load(self) -> LoopState:
        return LoopState.from_dict(self._ws.store.get_state(self._key))

    def status(self) -> dict[str, Any]:
        """The loop as it stands: paused or not, a retrain asked for, the controller's lease, the champion,
        and the controller's stored state."""
        ws = self._ws
        state = self._load()
        lease = ws.store.get_lease(self._key)
        champion = ws.registry.champion(ws.spec.name)
        return {"project": ws.spec.name, "paused": state.paused, "retrain_requested": state.retrain_requested,
                "champion": None if champion is None else champion.version,
                "controller": None if lease is None else {"owner": lease.owner, "until": lease.until.isoformat()},
                "state": state.to_dict()}

    def _change(self, kind: str, message: str, actor: str | None, reason: str | None,
                field: str, value: dict[str, Any] | None) -> dict[str, Any]:
        ws = self._ws
        who = actor or local_actor()
        now = ws.clock.now()
        with ws.store.atomic():
            doc = ws.store.get_state(self._key) or {}
            doc[field] = None if value is None else {**value, "by": who, "at": now.isoformat(), "reason": reason}
            ws.store.put_state(self._key, doc)
            ws.store.append_event(Event(kind=kind, subject=f"project:{ws.spec.name}", time=now,
                                        message=f"{message} by {who}" + (f": {reason}" if reason else ""),
                                        data={"actor": who, "reason": reason}))
        return self.status()

    def pause(self, *, actor: str | None = None, reason: str | None = None) -> dict[str, Any]:
        """Stop the controller from acting (it keeps ticking and says it is paused) until :meth:`resume`."""
        return self._change("loop.paused", "loop paused", actor, reason, "paused", {})

    def resume(self, *, actor: str | None = None, reason: str | None = None) -> dict[str, Any]:
        """Let the controller act again."""
        return self._change("loop.resumed", "loop resumed", actor, reason, "paused", None)

    def retrain_now(self, *, actor: str | None = None, reason: str | None = None) -> dict[str, Any]:
        """Ask the controller for a retrain: its next tick starts one (trigger ``manual``), unless a trial or
        a rollback watch is running, which it finishes first."""
        return self._change("loop.retrain_requested", "retrain requested", actor, reason, "retrain_requested", {})


__all__ = ["LoopControl"]
