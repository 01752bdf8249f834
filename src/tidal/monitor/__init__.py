"""tidal.monitor: data drift, prediction drift and performance of a model version over a window.

    from tidal.monitor import build_report, render_html, summarize
    report = build_report(mv, predictions, spec.monitor, metrics=spec.validate.metric_names(),
                          report_id=uuid.uuid4().hex, now=clock.now())
    summarize(report)                      # one line per alert, for the CLI
    render_html([*recent, report], mv, Path("monitor.html"))

Drift tests are a plugin table (:mod:`tidal.monitor.registry`): PSI, Kolmogorov-Smirnov, normalised
Wasserstein, chi-square and Jensen-Shannon are built in; :class:`DriftTest` has a worked example of a
new one, and :func:`check_drift_test` is its conformance check. ``method: auto``
(:mod:`tidal.monitor.auto`) picks exact tests on small windows and effect sizes on large ones, so that
a million unchanged rows raise no alarm. Everything compares against the reference profile stored with
the version at registration: monitoring never reads the training data.
"""

from tidal.monitor.auto import AUTO, AUTO_EXACT_MAX, Choice, choose_test
from tidal.monitor.base import DriftTest
from tidal.monitor.binning import finite_values
from tidal.monitor.checks import DriftTestCheckFailed, check_drift_test
from tidal.monitor.drift import ColumnDrift, DatasetDrift, column_drift, detect_drift
from tidal.monitor.estimate import estimate_performance
from tidal.monitor.frame import frame_of
from tidal.monitor.html import render_html
from tidal.monitor.outputs import PredictionDrift, prediction_drift
from tidal.monitor.performance import assess_performance, bootstrap_interval, wilson_interval
from tidal.monitor.registry import (
    get_drift_test,
    known_drift_tests,
    register_drift_test,
    reset_drift_tests,
    unregister_drift_test,
)
from tidal.monitor.report import build_report, report_from_frame, summarize

__all__ = [
    "AUTO",
    "AUTO_EXACT_MAX",
    "Choice",
    "ColumnDrift",
    "DatasetDrift",
    "DriftTest",
    "DriftTestCheckFailed",
    "PredictionDrift",
    "assess_performance",
    "bootstrap_interval",
    "build_report",
    "check_drift_test",
    "choose_test",
    "column_drift",
    "detect_drift",
    "estimate_performance",
    "finite_values",
    "frame_of",
    "get_drift_test",
    "known_drift_tests",
    "prediction_drift",
    "register_drift_test",
    "render_html",
    "report_from_frame",
    "reset_drift_tests",
    "summarize",
    "unregister_drift_test",
    "wilson_interval",
]
