"""Reading tidal.yaml: YAML with line numbers, then the models, with every mistake as one clear line.

The order of checks: the file can be read → it is YAML → it holds one mapping → its ``version`` is one
this tidal reads (other problems in a file written for another version would only be noise) → the
models validate it. YAML is read with the safe loader (no tags that run code), rejects duplicate keys
(PyYAML would silently keep the last one) and aliases that contain themselves, and resolves plain
values as YAML 1.2 does: ``1e-3`` is a number, ``on``/``no``/``yes`` are text (see :class:`_Loader`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tidal.spec.errors import (
    Loc,
    SpecIssue,
    SpecValidationError,
    format_loc,
    issues_from_validation_error,
    show,
    version_issue,
)
from tidal.spec.model import Spec

SPEC_FILENAME = "tidal.yaml"
MAX_VALUES = 100_000
"""The most values a spec may hold, counting every repeat through a YAML alias (stops alias bombs)."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_INIT = "run `tidal init` to write a template"

# A fix for the user, per value, where the type of the error has no better one.
FIX_HINTS = {
    "name": "for example: name: churn-model",
    "model.estimator": "write the module and the class, e.g. sklearn.linear_model.LogisticRegression",
    "data.source": "e.g. data/train.csv, data/*.parquet or s3://bucket/data.parquet",
}


class _Loader(yaml.SafeLoader):
    """The safe loader, resolving plain values as YAML 1.2 does.

    ``1e-3`` and ``1.0e5`` are numbers (YAML 1.1 reads them as text); only ``true`` and ``false`` are
    booleans, so ``on:``, ``country: NO`` or ``y`` stay text (a true/false field still accepts yes/no).
    """


_BOOL_TAG = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml_hint(problem: str) -> str:
    if "\\t" in problem or "tab" in problem:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in problem or "block end" in problem or "indentation" in problem:
        return "check the indentation"
    if "could not find expected ':'" in problem:
        return "write each key as `key: value`, with a space after the colon"
    if "end of stream" in problem:
        return "close the quote or bracket that is still open"
    if "but found another document" in problem:
        return "keep one document in the file (remove the second `---`)"
    if "could not determine a constructor" in problem:
        return "remove the `!tag`: tidal.yaml holds plain values only"
    return "check the YAML syntax on that line"


def _yaml_issue(exc: yaml.YAMLError) -> SpecIssue:
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or "invalid YAML"
        mark, cmark = exc.problem_mark, exc.context_mark
        text = problem
        if exc.context:
            context = exc.context
            text = f"{problem} {context}" if context.startswith("while") else f"{context}, {problem}"
            if cmark is not None and mark is not None and cmark.line != mark.line:
                text += f" (started on line {cmark.line + 1})"
        text = f"could not parse YAML: {text}"
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        return SpecIssue("", text, _yaml_hint(problem), line, column)
    if isinstance(exc, yaml.reader.ReaderError):
        return SpecIssue("", f"could not parse YAML: unacceptable character #x{exc.character:04x} "
                             f"at position {exc.position}", "remove the control character")
    return SpecIssue("", f"could not parse YAML: {exc}", "check the YAML syntax")


def _check_nodes(root: Node) -> None:
    """Duplicate keys, self-containing aliases and alias bombs, which PyYAML lets through."""
    budget = [MAX_VALUES]

    def visit(node: Node, loc: Loc, parents: frozenset[int]) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise SpecValidationError([SpecIssue(
                format_loc(loc),
                f"too many values (more than {MAX_VALUES}, counting repeats through aliases)",
                "write the values out, or use fewer YAML aliases", node.start_mark.line + 1,
            )], source=None)
        if id(node) in parents:
            raise SpecValidationError([SpecIssue(
                format_loc(loc), "a YAML alias contains itself; expected plain values",
                "remove the alias (*name) that points at one of its own parents", node.start_mark.line + 1,
            )], source=None)
        inner = parents | {id(node)}
        if isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                visit(item, (*loc, i), inner)
        elif isinstance(node, MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, ScalarNode) else None
                if name is not None and key.tag != _MERGE_TAG:
                    if name in seen:
                        raise SpecValidationError([SpecIssue(
                            format_loc((*loc, name)),
                            f"duplicate key (first on line {seen[name]}); expected each key once",
                            "remove one of them", key.start_mark.line + 1,
                        )], source=None)
                    seen[name] = key.start_mark.line + 1
                visit(value, (*loc, name if name is not None else "?"), inner)

    visit(root, (), frozenset())


def _line_of(root: Node | None, loc: Loc) -> int | None:
    """The line of the deepest key of ``loc`` present in the file (a missing key: its section's line)."""
    node, line = root, None
    for part in loc:
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.value == str(part):
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _read_yaml(text: str, source: str) -> tuple[Any, Node | None]:
    loader: _Loader | None = None
    try:
        loader = _Loader(text.removeprefix("\ufeff"))
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_nodes(node)
        return loader.construct_document(node), node
    except yaml.YAMLError as exc:
        raise SpecValidationError([_yaml_issue(exc)], source=source) from None
    except SpecValidationError as exc:
        raise SpecValidationError(exc.errors, source=source) from None
    except RecursionError:
        issue = SpecIssue("", "nested too deeply; expected a few levels of keys",
                          "check the brackets and the indentation")
        raise SpecValidationError([issue], source=source) from None
    finally:
        if loader is not None:
            loader.dispose()


def _kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {show(value)}"
    return show(value)


def parse_spec(text: str, *, source: str = SPEC_FILENAME) -> Spec:
    """Parse and validate the text of a tidal.yaml; ``source`` names it in error messages.

    Raises :class:`~tidal.spec.errors.SpecValidationError` (a ``SpecError``) for every mistake.
    """
    data, root = _read_yaml(text, source)
    top_keys = "a mapping with at least name, data and model"
    if data is None:
        what = "the file is empty" if root is None else "the file holds only null"
        raise SpecValidationError([SpecIssue("", f"{what}; expected {top_keys}", _INIT)], source=source)
    if not isinstance(data, dict):
        line = root.start_mark.line + 1 if root is not None else None
        raise SpecValidationError(
            [SpecIssue("", f"the top level is {_kind_of(data)}; expected {top_keys}",
                       "write `key: value` lines (name: ..., data: ..., model: ...)", line)],
            source=source,
        )
    version = data.get("version", 1)
    if type(version) is not int or version != 1:
        issue = version_issue(version)
        raise SpecValidationError(
            [SpecIssue(issue.path, issue.message, issue.hint, _line_of(root, ("version",)))], source=source
        )
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        issues = issues_from_validation_error(exc, Spec, line_of=lambda loc: _line_of(root, loc),
                                              hints=FIX_HINTS)
        raise SpecValidationError(issues, source=source) from None


def load_spec(path: Path | str) -> Spec:
    """Read and validate a tidal.yaml; ``path`` is the file, or the folder that holds tidal.yaml.

    Relative paths inside the spec (``data.source``) are left as written: they are relative to the
    folder of the file, and the stages that use them resolve them.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SPEC_FILENAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecValidationError(
            [SpecIssue("", f"{path.name} not found in {path.parent.absolute()}",
                       "run `tidal init` to create one")], source=None,
        ) from None
    except OSError as exc:
        raise SpecValidationError(
            [SpecIssue("", f"could not read the file: {exc.strerror or exc}",
                       "check the path and its permissions")],
            source=str(path),
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecValidationError(
            [SpecIssue("", f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at position {exc.start})",
                       "save the file as UTF-8")], source=str(path),
        ) from None
    return parse_spec(text, source=str(path))
