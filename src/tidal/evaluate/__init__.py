"""tidal.evaluate."""
