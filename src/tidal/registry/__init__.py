"""The model registry: versions, states (candidate → validated | rejected → deployed → retired), aliases."""

from tidal.registry.service import CHALLENGER, CHAMPION, Registry, subject

__all__ = ["CHALLENGER", "CHAMPION", "Registry", "subject"]
