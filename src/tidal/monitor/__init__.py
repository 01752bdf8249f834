"""tidal.monitor."""
