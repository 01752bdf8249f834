"""docs/spec.md documents every key of the schema, and its examples say what the code does."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from tidal.spec import Spec, parse_spec

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "spec.md").read_text()


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """The sections a key holds: a model, or each model of a union of forms (``data.source``: text or
    ``{http: ...}``; ``paginate``: one of three kinds). An optional section (``Model | None``) is documented
    as one key, as before; the items of a list are not walked."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    args = _union_members(annotation)
    models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    return models if len(args) > 1 and (type(None) not in args or len(models) > 1) else []


def _union_members(annotation: object) -> list[object]:
    """The members of a union, through ``Annotated`` and nested unions."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _union_members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _union_members(arg)]
    return [annotation]


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        keys.append(path)
        for inner in _models_in(info.annotation):
            keys += [key for key in _keys(inner, path) if key not in keys]
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
