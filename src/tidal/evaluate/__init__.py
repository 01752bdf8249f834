"""tidal.evaluate: metrics, the evaluate step, and the gate (absolute thresholds and thresholds relative to
the champion, compared on the same rows)."""

from tidal.evaluate.compare import MIN_COMPARED_ROWS, Champion, gate_decision, unseen_rows
from tidal.evaluate.gate import GateDecision, evaluate_gates
from tidal.evaluate.metrics import compute_metrics, primary_metric
from tidal.evaluate.scoring import Evaluation, evaluate_model, metrics_on

__all__ = ["MIN_COMPARED_ROWS", "Champion", "Evaluation", "GateDecision", "compute_metrics", "evaluate_gates",
           "evaluate_model", "gate_decision", "metrics_on", "primary_metric", "unseen_rows"]
