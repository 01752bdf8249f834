"""The model registry: versions, states (prototype → validated | rejected → deployed → monitored → improved |
retired), aliases."""

from tidal.registry.service import (
    CHALLENGER,
    CHAMPION,
    LIVE,
    SERVABLE,
    STATE_EVENT,
    Registry,
    Serving,
    Transition,
    subject,
    triggered_by,
)

__all__ = ["CHALLENGER", "CHAMPION", "LIVE", "SERVABLE", "STATE_EVENT", "Registry", "Serving", "Transition",
           "subject", "triggered_by"]
