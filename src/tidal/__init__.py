"""tidal: the whole machine-learning lifecycle as one closed loop.

The public API is exactly ``__all__`` (checked by a test)::

    import tidal
    ws = tidal.Workspace.open("path/to/project")
    result = ws.run()
    ws.models.list()
"""

from tidal.core.errors import (
    AliasConflict,
    DataError,
    GateFailed,
    IntegrityError,
    ModelNotFound,
    NotFound,
    PluginNotFound,
    RegistryError,
    SchemaError,
    ServingError,
    SourceError,
    SpecError,
    StorageError,
    TidalError,
    TrainingError,
    UntrustedModel,
)

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Workspace pulls in pandas, scikit-learn and SQLAlchemy; import it lazily so that `import tidal`
    # (and `tidal --help`) stays fast.
    if name == "Workspace":
        from tidal.workspace import Workspace

        return Workspace
    raise AttributeError(f"module 'tidal' has no attribute {name!r}")


__all__ = [
    "AliasConflict",
    "DataError",
    "GateFailed",
    "IntegrityError",
    "ModelNotFound",
    "NotFound",
    "PluginNotFound",
    "RegistryError",
    "SchemaError",
    "ServingError",
    "SourceError",
    "SpecError",
    "StorageError",
    "TidalError",
    "TrainingError",
    "UntrustedModel",
    "Workspace",
    "__version__",
]
