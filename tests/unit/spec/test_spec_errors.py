"""Every mistake in tidal.yaml is one SpecError line: file, line, key path, what is wrong, the fix."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tidal.core.errors import SpecError
from tidal.spec import SpecIssue, SpecValidationError, load_spec, parse_spec

EXAMPLE = (Path(__file__).resolve().parents[3] / "examples" / "elec2" / "tidal.yaml").read_text()
MINIMAL = "name: t\ndata: {source: d.csv, target: y}\nmodel: {estimator: a.B}\n"


def error_of(text: str, source: str = "tidal.yaml") -> SpecValidationError:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source=source)
    err = info.value
    assert isinstance(err, SpecValidationError)
    assert_one_clean_line(str(err))
    assert err.errors and all(isinstance(i, SpecIssue) for i in err.errors)
    return err


def assert_one_clean_line(message: str, echoed: str = "") -> None:
    """One line, and none of pydantic's or Python's own wording — unless the user wrote it.

    ``echoed`` is the user's text: an error may quote it (hypothesis draws string constants from
    this very module, so it does write "Input should" as a spec), and a quote is not a leak.
    """
    assert "\n" not in message and "\r" not in message
    for leak in ("pydantic", "errors.pydantic.dev", "Input should", "validation error", "Traceback"):
        assert leak not in message or leak in echoed, message


def edit(old: str, new: str, text: str = EXAMPLE) -> str:
    assert old in text, old
    return text.replace(old, new)


# -- exact messages -------------------------------------------------------------------------------

EXACT = {
    "unknown key, near a known one": (
        edit("params:", "paramz:"),
        "tidal.yaml line 15: model.paramz: unknown key — did you mean 'params'?",
    ),
    "unknown key, far from every known one": (
        edit("  seed: 0", "  seed: 0\n  zzz: 1"),
        "tidal.yaml line 17: model.zzz: unknown key; expected one of estimator, params, seed, task, search"
        " — remove it, or fix its spelling",
    ),
    "known key in the wrong section": (
        EXAMPLE + "target: up\n",
        "tidal.yaml line 39: target: unknown key here — target belongs under data:",
    ),
    "unknown key in a nested section": (
        edit("test_size: 0.2}", "test_sise: 0.2}"),
        "tidal.yaml line 18: validate.split.test_sise: unknown key — did you mean 'test_size'?",
    ),
    "missing required key": (
        edit("  target: up\n", ""),
        "tidal.yaml line 4: data.target: required key missing — add the name of the column to predict",
    ),
    "missing required section": (
        "name: t\nmodel: {estimator: a.B}\n",
        "tidal.yaml: data: required key missing — add a data: section with at least source and target",
    ),
    "wrong type": (
        edit("test_size: 0.2", "test_size: big"),
        "tidal.yaml line 18: validate.split.test_size: expected a number between 0 and 1 (exclusive),"
        " got 'big'",
    ),
    "out of range": (
        edit("test_size: 0.2", "test_size: 1"),
        "tidal.yaml line 18: validate.split.test_size: expected a number between 0 and 1 (exclusive),"
        " got 1",
    ),
    "bad enum": (
        edit("scale: standard", "scale: zscore"),
        "tidal.yaml line 11: prepare.scale: expected one of 'standard', 'minmax' or 'none', got 'zscore'",
    ),
    "bad enum, near an allowed value": (
        edit("  seed: 0", "  seed: 0\n  task: regresion"),
        "tidal.yaml line 17: model.task: expected one of 'classification', 'regression' or null,"
        " got 'regresion' — did you mean 'regression'?",
    ),
    "bad gate syntax": (
        edit("accuracy >= 0.60", "accuracy => 0.60"),
        "tidal.yaml line 21: validate.gates[0]: could not read the gate 'accuracy => 0.60'; expected"
        " 'metric >= 0.70', 'metric >= champion - 0.01' or 'metric <= champion * 1.05'"
        " (op: >=, >, <=, <) — write '>=' instead of '=>'",
    ),
    "unknown metric in a gate": (
        edit("accuracy >= champion", "acuracy >= champion"),
        "tidal.yaml line 22: validate.gates[1]: unknown metric 'acuracy' in the gate"
        " 'acuracy >= champion - 0.03'; expected one of accuracy, balanced_accuracy, f1, roc_auc,"
        " log_loss, rmse, mae, r2 — did you mean 'accuracy'?",
    ),
    "unknown metric in metrics": (
        edit("[accuracy, roc_auc]", "[accuracy, auc]"),
        "tidal.yaml line 19: validate.metrics[1]: unknown metric 'auc'; expected one of accuracy,"
        " balanced_accuracy, f1, roc_auc, log_loss, rmse, mae, r2 — did you mean 'roc_auc'?",
    ),
    "newer version": (
        edit("version: 1", "version: 2"),
        "tidal.yaml line 2: version: 2 is not supported by this tidal (supports 1)"
        " — upgrade tidal to read this file",
    ),
    "version as text": (
        edit("version: 1", "version: '1'"),
        "tidal.yaml line 2: version: expected 1 (the schema version), got '1' — write version: 1",
    ),
    "malformed YAML": (
        "version: 1\nname: x\ndata:\n  source: a\n  target: b\nmodel:\n  estimator: a.B\n  params: x: 1\n",
        "tidal.yaml line 8, column 12: could not parse YAML: mapping values are not allowed here"
        " — check the indentation",
    ),
    "tab indentation": (
        "name: x\ndata:\n\tsource: a\n",
        "tidal.yaml line 3, column 1: could not parse YAML: found character '\\t' that cannot start any"
        " token while scanning for the next token — indent with spaces, not tabs",
    ),
    "empty file": (
        "",
        "tidal.yaml: the file is empty; expected a mapping with at least name, data and model"
        " — run `tidal init` to write a template",
    ),
    "top level is a list": (
        "- name: x\n",
        "tidal.yaml line 1: the top level is a list; expected a mapping with at least name, data and"
        " model — write `key: value` lines (name: ..., data: ..., model: ...)",
    ),
    "duplicate key": (
        edit("  target: up\n", "  target: up\n  target: down\n"),
        "tidal.yaml line 7: data.target: duplicate key (first on line 6); expected each key once"
        " — remove one of them",
    ),
    "estimator without a module": (
        edit("sklearn.ensemble.HistGradientBoostingClassifier", "HistGradientBoostingClassifier"),
        "tidal.yaml line 14: model.estimator: expected a dotted import path to an estimator class, like"
        " sklearn.ensemble.HistGradientBoostingClassifier, got 'HistGradientBoostingClassifier'"
        " — write the module and the class, e.g. sklearn.linear_model.LogisticRegression",
    ),
    "number where text is expected": (
        edit("target: up", "target: 1"),
        "tidal.yaml line 6: data.target: expected the name of the column to predict, got 1"
        " — put it in quotes to make it text",
    ),
}


@pytest.mark.parametrize("text, expected", EXACT.values(), ids=EXACT.keys())
def test_exact_message(text: str, expected: str) -> None:
    assert str(error_of(text)) == expected


# -- the rest, by their essential words --------------------------------------------------------------

PARTS = {
    "comments only": ("# nothing here\n", ["the file is empty"]),
    "only null": ("null\n", ["the file holds only null"]),
    "top level is text": ("hello\n", ["line 1: the top level is the text 'hello'"]),
    "unclosed quote": ("name: 'x\ndata: 1\n", ["could not parse YAML", "quoted scalar", "close the quote"]),
    "two documents": ("name: x\n---\nname: y\n", ["line 2", "single document", "remove the second `---`"]),
    "python tag": ("name: !!python/object:os.system x\n", ["line 1, column 7", "constructor", "!tag"]),
    "control character": ("name: x\x00\n", ["unacceptable character #x0000"]),
    "deep nesting": ("a: " + "[" * 5000 + "]" * 5000, ["nested too deeply"]),
    "alias bomb": (
        "a: &a [1,2]\nb: &b [" + ",".join(["*a"] * 30) + "]\nc: &c [" + ",".join(["*b"] * 30)
        + "]\nd: &d [" + ",".join(["*c"] * 30) + "]\ne: [" + ",".join(["*d"] * 30) + "]\n",
        ["too many values"],
    ),
    "alias cycle": (MINIMAL + "monitor: &m {a: *m}\n", ["monitor.a: a YAML alias contains itself"]),
    "section is text": (
        "name: t\ndata: foo\nmodel: {estimator: a.B}\n",
        ["line 2: data: expected a data: section with at least source and target, got 'foo'"],
    ),
    "section is a list": (MINIMAL + "prepare: [a]\n", ["prepare: expected a prepare: section", "got a list"]),
    "bad name": (
        MINIMAL.replace("name: t", "name: my project"),
        ["line 1: name: expected a project name", "got 'my project'", "for example: name:"],
    ),
    "name too long": (MINIMAL.replace("name: t", "name: " + "a" * 65), ["name: expected a project name"]),
    "empty source": (
        MINIMAL.replace("source: d.csv", "source: ''"), ["data.source: expected where", "got ''"]
    ),
    "negative tolerance": (
        "name: t\ndata: {source: d, target: y, checks: {range_tolerance: -1}}\nmodel: {estimator: a.B}\n",
        ["line 2: data.checks.range_tolerance: expected a number >= 0", "got -1"],
    ),
    "duplicate section": (
        MINIMAL + "data: {source: e, target: z}\n", ["line 4: data: duplicate key (first on line 2)"]
    ),
    "null share above 1": (
        "name: t\ndata: {source: d, target: y, checks: {null_share_jump: 1.5}}\nmodel: {estimator: a.B}\n",
        ["data.checks.null_share_jump: expected a number between 0 and 1", "got 1.5"],
    ),
    "policy": (
        "name: t\ndata: {source: d, target: y, checks: {range: fail}}\nmodel: {estimator: a.B}\n",
        ["data.checks.range: expected one of 'warn' or 'error', got 'fail'"],
    ),
    "seed not whole": (MINIMAL.replace("a.B}", "a.B, seed: 1.5}"), ["model.seed: expected a whole number"]),
    "params not a mapping": (
        MINIMAL.replace("a.B}", "a.B, params: [1]}"), ["model.params: expected a mapping"]
    ),
    "params key not text": (
        MINIMAL.replace("a.B}", "a.B, params: {1: 2}}"), ["model.params: key 1 is not text"]
    ),
    "key not text": (MINIMAL + "1: 2\n", ["line 4: key 1 is not text"]),
    "bool": (MINIMAL + "deploy: {auto_promote: maybe}\n", ["deploy.auto_promote: expected true or false"]),
    "storage not text": (MINIMAL + "storage: {store: 5}\n", ["storage.store: expected", "got 5", "quotes"]),
    "monitor not a mapping": (MINIMAL + "monitor: 5\n", ["monitor: expected a monitor: section"]),
    "gate not text": (
        MINIMAL + "validate: {gates: [{accuracy: 0.7}]}\n",
        ["validate.gates[0]: expected a gate written as text", "got a mapping"],
    ),
    "gate right side": (
        MINIMAL + "validate: {gates: ['accuracy >= champ - 1']}\n",
        ["could not read the right side 'champ - 1'", "champion * a number"],
    ),
    "gate equals": (MINIMAL + "validate: {gates: ['accuracy == 0.7']}\n", ["never ="]),
    "ratio of zero": (MINIMAL + "validate: {gates: ['rmse <= champion * 0']}\n", ["must be above 0"]),
    "metric twice": (
        MINIMAL + "validate: {metrics: [f1, f1]}\n", ["validate.metrics[1]: 'f1' is listed twice"]
    ),
    "metrics of two tasks": (
        MINIMAL + "validate: {metrics: [accuracy], gates: ['rmse <= 3']}\n",
        ["validate.gates[0]: 'rmse' is a regression metric, but 'accuracy' (validate.metrics[0])"],
    ),
    "metric of the other task": (
        MINIMAL.replace("a.B}", "a.B, task: regression}") + "validate: {metrics: [accuracy]}\n",
        ["validate.metrics[0]: 'accuracy' is a classification metric, but model.task is regression",
         "expected one of rmse, mae, r2"],
    ),
    "target among features": (
        edit("features: null", "features: [a, up]"), ["line 8: data.features[1]: 'up' is the target"]
    ),
    "target dropped": (edit("features: null", "drop: [up]"), ["data.drop[0]: 'up' is the target"]),
    "time is target": (edit("time: null", "time: up"), ["data.time: 'up' is also the target"]),
    "feature twice": (edit("features: null", "features: [a, a]"), ["data.features[1]: 'a' is listed twice"]),
    "version zero": (edit("version: 1", "version: 0"), ["version: 0 is not supported", "write version: 1"]),
    "version true": (edit("version: 1", "version: true"), ["version: expected 1", "got true"]),
}


@pytest.mark.parametrize("text, parts", PARTS.values(), ids=PARTS.keys())
def test_message_parts(text: str, parts: list[str]) -> None:
    message = str(error_of(text))
    for part in parts:
        assert part in message, message


def test_every_problem_is_kept_and_the_first_in_the_file_is_shown() -> None:
    text = edit("test_size: 0.2", "test_size: 2", edit("params:", "paramz:"))
    err = error_of(text)
    assert [str(issue) for issue in err.errors] == [
        "model.paramz: unknown key — did you mean 'params'?",
        "validate.split.test_size: expected a number between 0 and 1 (exclusive), got 2",
    ]
    assert [issue.line for issue in err.errors] == [15, 18]
    assert str(err) == (
        "tidal.yaml line 15: model.paramz: unknown key — did you mean 'params'? (and 1 more problem)"
    )
    assert err.path == "model.paramz" and err.line == 15 and err.source == "tidal.yaml"


def test_the_source_name_is_the_one_given() -> None:
    assert str(error_of("", source="conf/x.yaml")).startswith("conf/x.yaml: the file is empty")


def test_the_error_survives_pickling() -> None:
    err = error_of(edit("test_size: 0.2", "test_size: 2", edit("params:", "paramz:")))
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.errors == err.errors and again.path == err.path


def test_the_pydantic_error_is_not_chained() -> None:
    err = error_of(edit("params:", "paramz:"))
    assert err.__cause__ is None and err.__suppress_context__


# -- files ----------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "tidal.yaml")
    assert str(info.value) == f"tidal.yaml not found in {tmp_path} — run `tidal init` to create one"


def test_folder_without_a_spec(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"^tidal.yaml not found in .* — run `tidal init` to create one$"):
        load_spec(tmp_path)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tidal.yaml"
    path.write_text(EXAMPLE.replace("params:", "paramz:"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path} line 15: model.paramz: unknown key — did you mean 'params'?"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "tidal.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    expected = r"not UTF-8 text \(byte 0xe9 at position 9\) — save the file as UTF-8"
    with pytest.raises(SpecError, match=expected):
        load_spec(path)


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "tidal.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + EXAMPLE.encode())
    assert load_spec(path).name == "elec2"


# -- nothing but SpecError, whatever the input ------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_a_spec_or_one_spec_error(text: str) -> None:
    try:
        parse_spec(text)
    except SpecError as exc:
        assert_one_clean_line(str(exc), echoed=text)


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _leaves(tree: object, prefix: tuple = ()) -> list[tuple]:
    if isinstance(tree, dict) and tree:
        return [p for k, v in tree.items() for p in _leaves(v, (*prefix, k))]
    return [prefix]


_EXAMPLE_DATA = yaml.safe_load(EXAMPLE)
_EXAMPLE_LEAVES = _leaves(_EXAMPLE_DATA)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_EXAMPLE_LEAVES), _VALUES, st.booleans())
def test_any_change_to_the_example_gives_a_spec_or_one_spec_error(
    path: tuple, value: object, rename: bool
) -> None:
    data = yaml.safe_load(EXAMPLE)
    node = data
    for key in path[:-1]:
        node = node[key]
    if rename:
        node[f"{path[-1]}x"] = node.pop(path[-1])
    else:
        node[path[-1]] = value
    try:
        parse_spec(yaml.safe_dump(data))
    except SpecError as exc:
        message = str(exc)
        assert_one_clean_line(message, echoed=repr(value))
        assert message.startswith("tidal.yaml")
