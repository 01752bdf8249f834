"""tidal.data.sources."""
