"""tidal.loop."""
