"""tidal.executors."""
