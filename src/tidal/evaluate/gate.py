"""The validation gate: absolute thresholds and thresholds relative to the champion, on the same rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidal.spec.gates import Gate


@dataclass(frozen=True)
class GateDecision:
    """Whether a candidate passed, with one human sentence per gate."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    champion: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "failed": self.failed,
                "champion": self.champion}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GateDecision:
        return cls(passed=bool(d["passed"]), reasons=list(d.get("reasons", [])),
                   failed=list(d.get("failed", [])), champion=d.get("champion"))


def evaluate_gates(
    gates: Sequence[Gate], candidate: Mapping[str, float | None],
    champion: Mapping[str, float | None] | None, champion_label: str | None = None, *,
    candidate_vs_champion: Mapping[str, float | None] | None = None, compared: Mapping[str, Any] | None = None,
) -> GateDecision:
    """Check every gate; ``champion`` holds the champion's metrics on the candidate's holdout (or None).

    When the champion was compared on part of the holdout only (the rows it had not trained on),
    ``candidate_vs_champion`` holds the candidate's metrics on those same rows: gates that name the
    champion use them, absolute gates the whole holdout. ``compared`` says which rows (recorded with
    the decision)."""
    reasons: list[str] = []
    failed: list[str] = []
    for gate in gates:
        relative = gate.kind != "absolute" and candidate_vs_champion is not None
        values = candidate_vs_champion if relative and candidate_vs_champion is not None else candidate
        value = values.get(gate.metric)
        if value is None:
            reason = f"{gate}: {gate.metric} could not be computed on the holdout"
            reasons.append(reason)
            failed.append(reason)
            continue
        champ_value = champion.get(gate.metric) if champion is not None else None
        # a champion exists but has no value here (it could not be scored on these rows): say so, rather
        # than "no champion yet", which would be false
        unscored = f"{champion_label} could not be scored on these rows" if champion_label else "no champion yet"
        ok, reason = gate.check(value, champ_value, no_champion=unscored)
        reasons.append(reason)
        if not ok:
            failed.append(reason)
    if compared:
        if compared.get("note"):
            reasons.append(str(compared["note"]))
        elif compared.get("rows") != compared.get("of"):
            reasons.append(f"{champion_label or 'the champion'} was compared on the {compared.get('rows')} of the "
                           f"{compared.get('of')} holdout rows it had not trained on")
    info = {"label": champion_label, "metrics": dict(champion)} if champion is not None else None
    if info is not None and compared:
        info["compared"] = dict(compared)
        if candidate_vs_champion is not None:
            info["candidate_metrics"] = dict(candidate_vs_champion)
    return GateDecision(passed=not failed, reasons=reasons, failed=failed, champion=info)
