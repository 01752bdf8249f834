"""tidal.registry."""
