"""The core of tidal: entities, errors, ports, settings, hashing and clocks.

This package imports nothing else of tidal and no framework (SQLAlchemy, FastAPI, typer, ray): it is
the vocabulary every other layer speaks.
"""
