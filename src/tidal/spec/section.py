"""The base of every section of tidal.yaml, and the small value types the sections share."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from tidal.spec.errors import closest, show, spec_problem
from tidal.spec.metrics import KNOWN_METRICS


def _admits_none(annotation: Any) -> bool:
    return annotation is Any or annotation is None or type(None) in getattr(annotation, "__args__", ())


class Section(BaseModel):
    """Base of every section: unknown keys are errors, instances are immutable, keys are text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _prepare_input(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for key in data:
            if not isinstance(key, str):
                raise spec_problem("key_type", f"key {show(key)} is not text; expected a key name",
                                   hint="put the key in quotes, or fix the indentation", at=(str(key),))
        # `key:` with nothing after it (or `key: null`) means the default, where null means nothing else
        return {
            key: value for key, value in data.items()
            if value is not None
            or key not in cls.model_fields
            or cls.model_fields[key].is_required()
            or _admits_none(cls.model_fields[key].annotation)
        }


def _known_metric(name: str) -> str:
    if name not in KNOWN_METRICS:
        near = closest(name, KNOWN_METRICS)
        raise spec_problem(
            "unknown_metric",
            f"unknown metric {name!r}; expected one of {', '.join(KNOWN_METRICS)}",
            hint=f"did you mean {near!r}?" if near else "use one of the known metrics",
        )
    return name


NonEmpty = Annotated[str, Field(min_length=1)]
Metric = Annotated[str, AfterValidator(_known_metric)]
