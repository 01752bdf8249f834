"""tidal.train.flavors."""
