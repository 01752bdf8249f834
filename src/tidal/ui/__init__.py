"""tidal.ui."""
