"""Alerts that reach people: ``monitor.alerts`` webhooks, fed from the events the workspace records.

The events table is the source: every tick of the controller posts the events recorded since the last
delivery (a cursor in the metadata store, so a restarted controller neither repeats nor skips) that a
webhook's ``on:`` asks for. Each alert kind comes from events whatever recorded them, so a promotion or a
rollback made with the CLI is sent as one the loop made:

======================  =====================================================================
alert                   events
======================  =====================================================================
drift / performance     ``monitor.alert`` with a data-drift / a performance alert in its report
retrain                 ``loop.retrain``
retrain_failed          ``loop.retrain_failed``
rejected                ``gate.failed``, ``loop.trial_lost``
promotion               ``alias.moved`` of the champion (not a rollback)
rollback                ``alias.moved`` with ``rollback`` (the loop's and ``tidal rollback``)
collect_failed          ``collect.failed``, ``data.rejected``
======================  =====================================================================

A delivery is a JSON POST, tried ``attempts`` times with a growing wait on a 429, a 5xx or no answer
(tenacity); any other answer is final. De-duplication: the same alert about the same subject (a model
version) is sent once per ``dedupe`` period — a drifted window alerts at every tick, a person wants one
message. Rate limit: at most ``max_per_hour`` alerts an hour per webhook; those held back are counted in
the next message sent (and recorded once as ``alert.held``). Every outcome is an event: ``alert.sent`` or
``alert.failed`` (never a crash of the loop). The webhook URL is a secret (a Slack URL is its own
credential): events and errors name its scheme and host only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from tidal.core.durations import parse_duration
from tidal.core.entities import Event
from tidal.core.errors import SourceError
from tidal.data.sources.fetch import expand
from tidal.loop.context import LoopContext
from tidal.spec.alerts import AlertSpec

#: The most events one delivery round reads; an older backlog is counted in an ``alert.skipped`` event.
BACKLOG = 500
#: The events this module records: never alerted on themselves.
OWN = ("alert.sent", "alert.failed", "alert.held", "alert.skipped")

Post = Callable[[str, bytes, float], int]


def state_key(project: str) -> str:
    """The metadata store key of a project's alert state (cursor, de-duplication, rate)."""
    return f"alerts:{project}"


def alert_kinds(event: Event) -> list[str]:
    """The alerts an event is (most are none)."""
    kind, data = event.kind, event.data
    if kind == "monitor.alert":
        kinds = data.get("kinds")
        if not isinstance(kinds, list):  # recorded before events named their kinds
            kinds = ["data_drift"] if data.get("drifted") else ["performance"]
        return [{"data_drift": "drift"}.get(str(k), str(k)) for k in kinds if k in ("data_drift", "performance")]
    if kind == "alias.moved":
        if data.get("rollback"):
            return ["rollback"]
        return ["promotion"] if data.get("alias") == "champion" else []
    return {"loop.retrain": ["retrain"], "loop.retrain_failed": ["retrain_failed"], "gate.failed": ["rejected"],
            "loop.trial_lost": ["rejected"], "collect.failed": ["collect_failed"],
            "data.rejected": ["collect_failed"]}.get(kind, [])


def shown_url(url: str) -> str:
    """A webhook as events and errors show it: scheme and host, never its path or query (the secret part)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "") + "/…"


def body(spec: AlertSpec, project: str, alert: str, event: Event, held: int = 0) -> dict[str, Any]:
    """The JSON posted for one alert. Both forms carry Slack's ``text``, so a Slack-compatible receiver
    shows it; ``json`` adds tidal's fields for a program."""
    more = f" ({held} more alert{'s' if held != 1 else ''} held back by the rate limit before this one)" if held else ""
    text = f"[tidal] {project}: {alert.replace('_', ' ')}: {event.message}{more}"
    if spec.format == "slack":
        return {"text": text}
    return {"text": text, "alert": alert, "project": project, "subject": event.subject, "held_back": held,
            "event": {"id": event.id, "kind": event.kind, "message": event.message,
                      "time": event.time.isoformat(), "data": event.data}}


class _Retry(Exception):
    """A delivery answer worth trying again (429, 5xx, no answer)."""


def http_post(url: str, payload: bytes, timeout: float) -> int:
    """POST ``payload`` as JSON; the status code. A transport error or a 429/5xx raises :class:`_Retry`."""
    try:
        answer = httpx.post(url, content=payload, headers={"Content-Type": "application/json"}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise _Retry(type(exc).__name__) from None
    if answer.status_code == 429 or answer.status_code >= 500:
        raise _Retry(f"HTTP {answer.status_code}")
    return answer.status_code


@dataclass
class Alerts:
    """Delivers a workspace's alerts; :meth:`deliver` is one round (the controller calls it every tick)."""

    ctx: LoopContext
    record: Callable[[Event], Event]
    post: Post = http_post
    #: the longest wait between two tries of one delivery, in seconds (tests make it short)
    max_wait: float = 4.0

    @property
    def specs(self) -> Sequence[AlertSpec]:
        return self.ctx.spec.monitor.alerts

    def prime(self) -> None:
        """Start the cursor at the newest event when alerts are first configured: history is not sent."""
        if not self.specs:
            return
        key = state_key(self.ctx.spec.name)
        if (self.ctx.store.get_state(key) or {}).get("cursor") is None:
            newest = self.ctx.store.list_events(limit=1)
            self.ctx.store.put_state(key, {"cursor": newest[-1].id if newest else 0, "sent": {}, "hooks": {}})

    def deliver(self) -> list[Event]:
        """Send the alerts of the events recorded since the last round; the events this round recorded."""
        if not self.specs:
            return []
        self.prime()
        store, name, now = self.ctx.store, self.ctx.spec.name, self.ctx.clock.now()
        key = state_key(name)
        state = store.get_state(key) or {}
        cursor = int(state.get("cursor") or 0)
        events = store.list_events(since_id=cursor, limit=BACKLOG + 1)
        out: list[Event] = []
        if len(events) > BACKLOG:  # more than a round reads: the oldest are counted, not sent
            skipped = events[0]
            events = events[1:]
            out.append(self._note("alert.skipped", f"alerts: events after {cursor} up to {skipped.id} were too many "
                                  f"to send in one round (more than {BACKLOG}); only the newest {BACKLOG} were read",
                                  {"from": cursor, "to": skipped.id}))
        mine = [e for e in events if e.kind not in OWN and _about(e, name)]
        sent: dict[str, str] = {k: v for k, v in (state.get("sent") or {}).items()
                                if datetime.fromisoformat(v) > now - timedelta(days=7)}
        hooks: dict[str, Any] = dict(state.get("hooks") or {})
        for index, spec in enumerate(self.specs):
            hook = dict(hooks.get(str(index)) or {"times": [], "held": 0})
            hook["times"] = [t for t in hook["times"] if datetime.fromisoformat(t) > now - timedelta(hours=1)]
            for event in mine:
                for alert in alert_kinds(event):
                    if alert not in spec.on:
                        continue
                    dedupe = f"{index}|{alert}|{event.subject}"
                    last = sent.get(dedupe)
                    if last is not None and datetime.fromisoformat(last) > now - parse_duration(spec.dedupe):
                        continue
                    if len(hook["times"]) >= spec.max_per_hour:
                        hook["held"] += 1
                        if hook["held"] == 1:
                            out.append(self._note("alert.held", f"alerts to webhook {index + 1} held back: "
                                                  f"{spec.max_per_hour} were sent in the last hour "
                                                  f"(monitor.alerts max_per_hour)", {"webhook": index + 1}))
                        continue
                    out.append(self._send(spec, index, alert, event, hook["held"]))
                    hook["held"] = 0
                    hook["times"].append(now.isoformat())
                    sent[dedupe] = now.isoformat()
            hooks[str(index)] = hook
        store.put_state(key, {"cursor": max([cursor, *[e.id or 0 for e in events]]), "sent": sent, "hooks": hooks})
        return out

    def test(self) -> list[Event]:
        """Send a test alert to every webhook, whatever its ``on:``, de-duplication and rate (``tidal alerts
        test``); the ``alert.sent`` or ``alert.failed`` event of each, in the order of ``monitor.alerts``."""
        probe = Event(kind="alert.test", subject=f"project:{self.ctx.spec.name}", time=self.ctx.clock.now(),
                      message="a test alert from `tidal alerts test`: this webhook receives tidal's alerts")
        return [self._send(spec, index, "test", probe, 0) for index, spec in enumerate(self.specs)]

    def _send(self, spec: AlertSpec, index: int, alert: str, event: Event, held: int) -> Event:
        figures: dict[str, Any] = {"webhook": index + 1, "alert": alert, "event": event.id}
        try:
            url, _ = expand(spec.webhook, f"monitor.alerts[{index}].webhook")
        except SourceError as exc:
            return self._note("alert.failed", f"alert {alert} not sent to webhook {index + 1}: {exc}",
                              {**figures, "error": str(exc)})
        figures["to"] = shown_url(url)
        payload = json.dumps(body(spec, self.ctx.spec.name, alert, event, held), default=str).encode()
        tries = Retrying(stop=stop_after_attempt(spec.attempts), retry=retry_if_exception_type(_Retry),
                         wait=wait_exponential(multiplier=0.5, max=self.max_wait), reraise=False)
        try:
            status = tries(self.post, url, payload, spec.timeout)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            why = f"{cause} after {spec.attempts} tr{'y' if spec.attempts == 1 else 'ies'}"
            return self._note("alert.failed", f"alert {alert} not delivered to {figures['to']}: {why}",
                              {**figures, "error": why})
        if not 200 <= status < 300:
            return self._note("alert.failed", f"alert {alert} refused by {figures['to']}: HTTP {status} (not tried "
                              "again: check the webhook URL)", {**figures, "error": f"HTTP {status}"})
        return self._note("alert.sent", f"alert {alert} sent to {figures['to']}: {event.message}",
                          {**figures, "status": status})

    def _note(self, kind: str, message: str, data: dict[str, Any]) -> Event:
        return self.record(Event(kind=kind, subject=f"project:{self.ctx.spec.name}", message=message,
                                 time=self.ctx.clock.now(), data=data))


def _about(event: Event, project: str) -> bool:
    """Whether an event is about this project (a workspace's store may hold several)."""
    return event.subject.startswith((f"model:{project}:", f"project:{project}")) or event.subject == f"model:{project}"


__all__ = ["Alerts", "alert_kinds", "body", "http_post", "shown_url", "state_key"]
