"""tidal.serve."""
