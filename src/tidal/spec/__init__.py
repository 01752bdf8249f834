"""tidal.spec: tidal.yaml parsed into a validated, hashed :class:`Spec`, with errors that name the fix.

::

    from tidal.spec import load_spec
    spec = load_spec(Path("tidal.yaml"))      # or the project folder
    spec.model.estimator, spec.validate.gates, spec.digest

Every mistake in the file raises :class:`~tidal.core.errors.SpecError` (a
:class:`SpecValidationError`, with every problem on ``errors``) whose message is one line::

    tidal.yaml line 14: model.paramz: unknown key — did you mean 'params'?

docs/spec.md documents every key.
"""

from tidal.spec.errors import SpecIssue, SpecValidationError
from tidal.spec.gates import Gate
from tidal.spec.loading import load_spec, parse_spec
from tidal.spec.metrics import CLASSIFICATION_METRICS, KNOWN_METRICS, REGRESSION_METRICS
from tidal.spec.model import (
    ChecksSpec,
    DataSpec,
    DeploySpec,
    DriftSpec,
    ImputeSpec,
    ModelSpec,
    MonitorSpec,
    PerformanceSpec,
    PrepareSpec,
    Spec,
    SplitSpec,
    StorageSpec,
    ValidateSpec,
)
from tidal.spec.template import default_spec_yaml

__all__ = [
    "CLASSIFICATION_METRICS",
    "KNOWN_METRICS",
    "REGRESSION_METRICS",
    "ChecksSpec",
    "DataSpec",
    "DeploySpec",
    "DriftSpec",
    "Gate",
    "ImputeSpec",
    "ModelSpec",
    "MonitorSpec",
    "PerformanceSpec",
    "PrepareSpec",
    "Spec",
    "SpecIssue",
    "SpecValidationError",
    "SplitSpec",
    "StorageSpec",
    "ValidateSpec",
    "default_spec_yaml",
    "load_spec",
    "parse_spec",
]
