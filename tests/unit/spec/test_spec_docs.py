"""docs/spec.md documents every key of the schema, and its examples say what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from tidal.spec import Spec, parse_spec

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "spec.md").read_text()


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        keys.append(path)
        inner = info.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            keys += _keys(inner, path)
    return keys


def test_every_key_is_documented() -> None:
    missing = [key for key in _keys(Spec) if f"| `{key}` |" not in DOC]
    assert not missing


def test_no_documented_key_is_unknown() -> None:
    """Every key in the doc's tables is a spec key, or a parameter of tidal's own estimators (the PyTorch
    section's table of ``model.params``), each of which is one the estimator really takes."""
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", DOC, flags=re.MULTILINE))
    params = documented - set(_keys(Spec))
    assert set(_keys(Spec)) <= documented
    if params:
        from tidal.nn import TorchClassifier, TorchRegressor

        taken = set(TorchClassifier().get_params()) | set(TorchRegressor().get_params())
        assert params <= taken, params - taken


def test_the_example_in_the_doc_is_the_example_file() -> None:
    example = (ROOT / "examples" / "elec2" / "tidal.yaml").read_text()
    assert example in DOC
    assert parse_spec(example).name == "elec2"
