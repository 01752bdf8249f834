"""tidal.storage."""
