"""``monitor.alerts``: webhooks that the loop posts its important events to (:mod:`tidal.loop.alerts` sends them).

```yaml
monitor:
  alerts:
    - webhook: ${SLACK_WEBHOOK}       # a URL, or ${NAME} of an environment variable that holds one
      on: [drift, performance, retrain_failed, rollback]
      format: slack                   # json (the default: tidal's fields and a Slack-style "text") or slack
```

docs/monitoring.md ("Alerts") documents the keys.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from tidal.core.durations import DURATION_HINT, parse_duration
from tidal.spec.errors import show, spec_problem
from tidal.spec.section import NonEmpty, Section

#: What an alert can be about, and the events each one is (:func:`tidal.loop.alerts.alert_kinds`).
ALERT_KINDS = ("drift", "performance", "retrain", "retrain_failed", "rejected", "promotion", "rollback",
               "collect_failed")
AlertKind = Literal["drift", "performance", "retrain", "retrain_failed", "rejected", "promotion", "rollback",
                    "collect_failed"]
#: ``on`` when a webhook does not say: what needs a person.
DEFAULT_ON: tuple[AlertKind, ...] = ("drift", "performance", "retrain_failed", "rollback")
_URL = re.compile(r"^(https?://\S+|\S*\$\{[A-Za-z_][A-Za-z0-9_]*\}\S*)$")



class AlertSpec(Section):
    """One webhook and the alerts it receives."""

    webhook: NonEmpty = Field(description="the URL the alert is POSTed to (http or https), or ${NAME}: the "
                                          "environment variable NAME holds it (a Slack webhook URL is a secret)")
    on: list[AlertKind] = Field(default_factory=lambda: list(DEFAULT_ON),
                                description="the alerts sent: " + ", ".join(ALERT_KINDS))
    format: Literal["json", "slack"] = Field(
        "json", description="json: tidal's fields (alert, project, subject, event) and a Slack-style text; "
                            "slack: only Slack's {text}")
    dedupe: NonEmpty = Field("1h", description="the same alert about the same model version is sent once "
                                               f"in this long ({DURATION_HINT})")
    max_per_hour: int = Field(30, ge=1, description="at most this many alerts an hour to this webhook; the "
                                                     "rest are held back and counted in the next one sent")
    timeout: float = Field(5.0, gt=0, le=60, description="seconds to wait for the webhook's answer")
    attempts: int = Field(3, ge=1, le=10, description="tries of one delivery (a 429, a 5xx or no answer is "
                                                       "tried again, with a growing wait)")

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str) -> str:
        if not _URL.match(value.strip()):
            raise spec_problem("webhook", f"{show(value)} is not a webhook URL; expected http://... or https://...",
                               hint="write the URL, or ${NAME} with the URL in the environment variable NAME")
        return value.strip()

    @field_validator("dedupe")
    @classmethod
    def _dedupe(cls, value: str) -> str:
        try:
            parse_duration(value)
        except ValueError as exc:
            raise spec_problem("dedupe", str(exc), hint=f"write {DURATION_HINT}") from None
        return value

    @field_validator("on")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise spec_problem("alerts_on", "an alert webhook with an empty `on:` would never be sent anything",
                               hint="name what it receives, e.g. on: [drift, retrain_failed], or remove it")
        return list(dict.fromkeys(value))


__all__ = ["ALERT_KINDS", "DEFAULT_ON", "AlertKind", "AlertSpec"]
