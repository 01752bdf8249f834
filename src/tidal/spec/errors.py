"""Errors about tidal.yaml: one line each, naming the file, the line, the key, what is wrong and the fix.

Every problem found in a spec becomes a :class:`SpecIssue`; :class:`SpecValidationError` (a
:class:`~tidal.core.errors.SpecError`) carries all of them on ``errors`` and prints the first one::

    tidal.yaml line 14: model.paramz: unknown key — did you mean 'params'?

Pydantic's ``ValidationError`` is translated here (:func:`issues_from_validation_error`): its ``loc``
tuple becomes a dotted key path (list items as ``[i]``), its error type a sentence written from the
field's ``description``. Pydantic's own text (and its documentation URL) never reaches the user.

Validators inside the models raise :func:`spec_problem`, a ``PydanticCustomError`` whose context holds
the finished message, the fix and, for checks that span several keys, the key path below the model.
"""

from __future__ import annotations

import datetime as dt
import difflib
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from tidal.core.errors import SpecError

Loc = tuple[int | str, ...]


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec: where it is, what is wrong, and how to fix it."""

    path: str
    """Dotted key path (``validate.gates[1]``); empty for a problem with the whole file."""
    message: str
    """What is wrong, with ``; expected ...`` where there is something to expect."""
    hint: str | None = None
    """The fix, printed after a dash."""
    line: int | None = None
    """1-based line in the file, where known."""
    column: int | None = None
    """1-based column, given for YAML syntax errors only."""

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{text} — {self.hint}" if self.hint else text


class SpecValidationError(SpecError):
    """tidal.yaml cannot be used; ``errors`` holds every problem found, the message shows the first.

    ``path`` is the key path of the first problem (``None`` for a problem with the whole file),
    ``source`` the file name as given, ``line`` and ``column`` where the first problem is.
    """

    def __init__(self, issues: Sequence[SpecIssue], *, source: str | None) -> None:
        if not issues:
            raise ValueError("SpecValidationError needs at least one issue")
        first = issues[0]
        where = source or ""
        if where and first.line is not None:
            where += f" line {first.line}"
            if first.column is not None:
                where += f", column {first.column}"
        parts = [p for p in (where, first.path, first.message) if p]
        message = ": ".join(parts)
        hint = first.hint
        if len(issues) > 1:
            more = f"(and {len(issues) - 1} more problem{'s' if len(issues) > 2 else ''})"
            if hint:
                hint = f"{hint} {more}"
            else:
                message = f"{message} {more}"
        super().__init__(_one_line(message), hint=_one_line(hint) if hint else None)
        self.path = first.path or None
        self.source = source
        self.line = first.line
        self.column = first.column
        self.errors: list[SpecIssue] = list(issues)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable, e.g. across a Ray worker boundary
        return (_rebuild, (self.errors, self.source))


def _rebuild(issues: list[SpecIssue], source: str | None) -> SpecValidationError:
    return SpecValidationError(issues, source=source)


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


# -- helpers shared by the models and the loader ------------------------------------------------------


def spec_problem(kind: str, message: str, *, hint: str | None = None, at: Loc = ()) -> PydanticCustomError:
    """A validation error with a finished message; ``at`` is the key path below the validating model."""
    return PydanticCustomError(kind, "{message}", {"message": message, "hint": hint, "at": tuple(at)})


def show(value: Any, limit: int = 60) -> str:
    """A value as a user wrote it in YAML, short enough for one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        text = repr(value)
    elif isinstance(value, dict | BaseModel):
        return "a mapping"
    elif isinstance(value, list | tuple):
        return "a list"
    elif isinstance(value, dt.date):
        return f"the date {value.isoformat()}"
    else:
        text = f"{type(value).__name__} {value!r}"
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def or_list(items: Iterable[Any], quote: bool = True) -> str:
    """``'a', 'b' or 'c'``."""
    shown = [repr(i) if quote and isinstance(i, str) else show(i) for i in items]
    if len(shown) <= 1:
        return "".join(shown)
    return f"{', '.join(shown[:-1])} or {shown[-1]}"


def closest(word: str, known: Iterable[str]) -> str | None:
    """The nearest known word, by difflib, or ``None`` when nothing is near."""
    matches = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


def format_loc(loc: Loc) -> str:
    """``('validate', 'gates', 0)`` → ``validate.gates[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def version_issue(value: Any) -> SpecIssue:
    """The problem with a ``version`` other than 1."""
    if isinstance(value, int) and not isinstance(value, bool):
        fix = "upgrade tidal to read this file" if value > 1 else "write version: 1"
        return SpecIssue("version", f"{value} is not supported by this tidal (supports 1)", fix)
    return SpecIssue("version", f"expected 1 (the schema version), got {show(value)}", "write version: 1")


# -- translating pydantic's ValidationError -----------------------------------------------------------

_GENERIC_EXPECTED = {
    "string_type": "text",
    "string_too_short": "non-empty text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
}

_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (directly, in a list, or as an optional), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _literal_values(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    for arg in typing.get_args(annotation):
        values = _literal_values(arg)
        if values:
            return values
    return ()


def _walk(root: type[BaseModel], loc: Loc) -> tuple[type[BaseModel] | None, FieldInfo | None, Loc]:
    """Follow ``loc`` through the models: the model reached, the last field passed, the unresolved rest."""
    model: type[BaseModel] | None = root
    info: FieldInfo | None = None
    for n, part in enumerate(loc):
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return model, info, loc[n:]
        info = model.model_fields[part]
        model = _model_in(info.annotation)
    return model, info, ()


def key_homes(root: type[BaseModel]) -> dict[str, list[str]]:
    """Every key the schema knows, with the sections it belongs to (``{'target': ['data']}``)."""
    homes: dict[str, list[str]] = {}

    def visit(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            homes.setdefault(name, []).append(prefix or "the top level")
            inner = _model_in(info.annotation)
            if inner is not None and typing.get_origin(info.annotation) is not list:
                visit(inner, f"{prefix}.{name}" if prefix else name)

    visit(root, "")
    return homes


def _unknown_key(root: type[BaseModel], loc: Loc) -> tuple[str, str | None]:
    model, _, rest = _walk(root, loc[:-1])
    key = str(loc[-1])
    known = list(model.model_fields) if model is not None and not rest else []
    here = format_loc(loc[:-1]) or "the top level"
    homes = [h for h in key_homes(root).get(key, []) if h != here]
    if homes:
        where = " or ".join("at the top level" if h == "the top level" else f"under {h}:" for h in homes)
        return "unknown key here", f"{key} belongs {where}"
    near = closest(key, known)
    if near:
        return "unknown key", f"did you mean {near!r}?"
    return (
        f"unknown key; expected one of {', '.join(known)}",
        "remove it, or fix its spelling",
    )


def _expected(kind: str, info: FieldInfo | None, rest: Loc, ctx: dict[str, Any], msg: str) -> str:
    if info is not None and not rest and info.description:
        return info.description
    if kind in _GENERIC_EXPECTED:
        return _GENERIC_EXPECTED[kind]
    for key, sign in _BOUNDS.items():
        if key in ctx:
            return f"a number {sign} {ctx[key]}"
    if kind == "string_pattern_mismatch":
        return f"text matching {ctx.get('pattern')}"
    prefix = "Input should be "
    return msg[len(prefix):] if msg.startswith(prefix) else msg[:1].lower() + msg[1:]


def _issue(root: type[BaseModel], err: Any, hints: dict[str, str]) -> tuple[SpecIssue, Loc]:
    kind: str = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    loc: Loc = tuple(err["loc"]) + tuple(ctx.get("at") or ())
    # a dict key that fails its type is reported at the key itself
    if loc and loc[-1] == "[key]":
        message = f"key {show(err.get('input'))} is not text; expected a key name"
        return SpecIssue(format_loc(loc[:-2]), message, "put the key in quotes"), loc[:-1]
    path = format_loc(loc[:-1] if kind == "key_type" else loc)
    value = err.get("input")
    if "message" in ctx:  # raised by one of our validators: the message is already written
        return SpecIssue(path, ctx["message"], ctx.get("hint")), loc
    if loc == ("version",):
        return version_issue(value), loc
    if kind == "extra_forbidden":
        message, hint = _unknown_key(root, loc)
        return SpecIssue(path, message, hint), loc
    _, info, rest = _walk(root, loc)
    if kind == "missing":
        what = info.description if info is not None and info.description else "a value"
        return SpecIssue(path, "required key missing", f"add {what}"), loc
    hint = hints.get(path) if not rest else None
    if kind == "literal_error":
        allowed = _literal_values(info.annotation) if info is not None else ()
        if allowed:
            near = closest(value, [str(a) for a in allowed]) if isinstance(value, str) else None
            allowed_text = or_list(allowed)
            if info is not None and type(None) in typing.get_args(info.annotation):
                allowed_text = f"{', '.join(repr(a) for a in allowed)} or null"
            message = f"expected one of {allowed_text}, got {show(value)}"
            return SpecIssue(path, message, f"did you mean {near!r}?" if near else hint), loc
    expected = _expected(kind, info, rest, ctx, str(err.get("msg", "")))
    if hint is None and kind == "string_type" and isinstance(value, int | float | dt.date):
        hint = "put it in quotes to make it text"
    return SpecIssue(path, f"expected {expected}, got {show(value)}", hint), loc


def issues_from_validation_error(
    exc: ValidationError,
    root: type[BaseModel],
    *,
    line_of: Callable[[Loc], int | None] = lambda loc: None,
    hints: dict[str, str] | None = None,
) -> list[SpecIssue]:
    """Every error in ``exc`` as a :class:`SpecIssue`, in file order (by line, where known).

    ``line_of`` maps a key path to its line in the file; ``hints`` gives a fix per dotted key path,
    used for a wrong value where the error type has no better one.
    """
    issues: list[SpecIssue] = []
    for err in exc.errors(include_url=False):
        issue, loc = _issue(root, err, hints or {})
        line = line_of(loc)
        issues.append(SpecIssue(issue.path, issue.message, issue.hint, line))
    order = sorted(range(len(issues)), key=lambda i: (issues[i].line is None, issues[i].line or 0, i))
    return [issues[i] for i in order]
