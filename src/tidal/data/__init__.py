"""tidal.data."""
