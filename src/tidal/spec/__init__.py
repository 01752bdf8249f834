"""tidal.spec."""
