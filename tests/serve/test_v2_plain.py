"""The infer route's one-pass reading of plain JSON tensors (tidal.serve.v2plan), in process: it gives the very
columns the tensor-by-tensor reading gives, leaves every malformed or unusual request to that reading (which
names what is wrong, as before), and says the rows are checked only where the row checks would pass them."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from tidal.core.signature import Signature
from tidal.predict.errors import ApiError
from tidal.predict.inputs import InputSchema
from tidal.serve.v2 import InferRequest, _renamed, table
from tidal.serve.v2plan import FORMS, LEARNED, Plan, plain_columns
from tidal.serve.v2tensors import careful

KINDS = {"a": "numeric", "b": "numeric", "n": "integer", "flag": "boolean", "colour": "categorical",
         "label_lag_1": "numeric"}
MAX_ROWS = 10


def state(kinds: dict[str, str] | None = None, nullable: tuple[str, ...] = ("a", "colour")) -> Any:
    sig = Signature(columns=dict(kinds or KINDS), target="y", classes=[0, 1], task="classification",
                    label_features={"lags": [1]})
    mv = SimpleNamespace(signature=sig, format="skops", name="m", version=1)
    return SimpleNamespace(name="m", version=1, classes=[0, 1], mv=mv, schema=InputSchema.from_signature(sig, nullable))


def good() -> list[dict[str, Any]]:
    return [{"name": "a", "shape": [2], "datatype": "FP64", "data": [0.5, None]},
            {"name": "b", "shape": [2], "datatype": "FP64", "data": [1, 2.5]},
            {"name": "n", "shape": [2], "datatype": "INT64", "data": [3, -4]},
            {"name": "flag", "shape": [2], "datatype": "BOOL", "data": [True, False]},
            {"name": "colour", "shape": [2], "datatype": "BYTES", "data": ["red", None]}]


def with_label(tensors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*tensors, {"name": "label_lag_1", "shape": [2], "datatype": "FP32", "data": [0.0, 1.0]}]


PLAIN: dict[str, Callable[[list[dict[str, Any]]], list[dict[str, Any]]]] = {
    "as sent": lambda t: t,
    "in another order": lambda t: t[::-1],
    "label feature sent": with_label,
    "other number datatypes": lambda t: [{**x, "datatype": {"FP64": "FP32", "INT64": "INT32"}.get(x["datatype"],
                                                                                                   x["datatype"])}
                                         for x in t],
}


@pytest.mark.parametrize("variant", list(PLAIN))
def test_the_plain_reading_gives_the_careful_columns(variant: str) -> None:
    st = state()
    tensors = PLAIN[variant](good())
    plan = Plan(st)
    for _ in range(2):  # worked out, then remembered for the next request of the same form
        plain = plain_columns(copy.deepcopy(tensors), plan)
        assert plain is not None
        layout, values = plain
        assert layout.order == tuple(c for c in KINDS if c in layout.order)  # the signature's order
        assert layout.rows == 2 and layout.complete == (variant == "label feature sent")
        assert dict(zip(layout.order, values, strict=True)) == careful(copy.deepcopy(tensors), st, b"", MAX_ROWS)
    rows = InferRequest.parse({"inputs": tensors}, b"", st, max_rows=MAX_ROWS).rows
    assert rows[1] == {"a": None, "b": 2.5, "n": -4, "flag": False, "colour": None,
                       **({"label_lag_1": 1.0} if variant == "label feature sent" else {})}


def test_rows_are_marked_checked_only_where_the_row_checks_pass_them() -> None:
    st = state()
    complete = InferRequest.parse({"inputs": with_label(good())}, b"", st, max_rows=MAX_ROWS)
    assert complete.checked is st
    st.schema.check_rows(complete.rows)  # what the mark stands for
    # a label feature left to the server (the row checks run after it is filled)
    assert InferRequest.parse({"inputs": good()}, b"", st, max_rows=MAX_ROWS).checked is None
    # a date-time is parsed by the row checks, not only typed
    dated = state({**KINDS, "colour": "datetime"})
    tensors = [*with_label(good())[:4], {"name": "colour", "shape": [2], "datatype": "BYTES", "data": ["x", None]},
               with_label(good())[5]]
    assert plain_columns(tensors, Plan(dated)) is not None
    assert InferRequest.parse({"inputs": tensors}, b"", dated, max_rows=MAX_ROWS).checked is None
    # a null where the model takes none: the careful reading takes it, the row checks refuse it in the v2 words
    nulls = with_label(good())
    nulls[1] = {**nulls[1], "data": [1.0, None]}
    assert plain_columns(nulls, Plan(st)) is None
    req = InferRequest.parse({"inputs": nulls}, b"", st, max_rows=MAX_ROWS)
    assert req.checked is None
    with pytest.raises(ApiError) as refused:
        st.schema.instances({"instances": req.rows}, max_rows=MAX_ROWS)
    assert _renamed(refused.value).message.startswith("input 'b', element 1: null is not allowed for this column")


def _set(i: int, **change: Any) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    return lambda t: [{**x, **change} if k == i else x for k, x in enumerate(t)]


MALFORMED: list[tuple[str, Callable[[list[dict[str, Any]]], list[Any]], str]] = [
    ("shape true", _set(0, shape=[True]), "input 'a': shape must be [rows] or [rows, 1]"),
    ("shape float", _set(1, shape=[2.0]), "input 'b': shape must be [rows] or [rows, 1]"),
    ("shape of 2 dims", _set(1, shape=[1, 2]), "input 'b': shape must be [rows] or [rows, 1]"),
    ("shape against data", _set(0, shape=[3]), "input 'a': data has 2 elements, the shape says 3"),
    ("rows differ", _set(2, shape=[1], data=[3]), "input 'n': shape says 1 rows where the inputs before it have 2"),
    ("no rows", lambda t: [{**x, "shape": [0], "data": []} for x in t], "input 'a': shape [0]"),
    ("name not text", _set(0, name=["a"]), "inputs[0].name: expected the name of an input column"),
    ("unknown name", lambda t: [*t, {**t[0], "name": "z"}], "inputs[5]: unknown input 'z'"),
    ("given twice", lambda t: [*t, t[1]], "inputs[5]: input 'b' is given twice"),
    ("missing", lambda t: t[1:], "missing input 'a'"),
    ("datatype of another kind", _set(3, datatype="FP64"), "input 'flag': datatype 'FP64' does not fit a boolean"),
    ("datatype not text", _set(0, datatype=["FP64"]), "input 'a': datatype \"['FP64']\" does not fit"),
    ("booleans as numbers", _set(1, data=[True, False]), "input 'b': data of a FP64 tensor must be numbers"),
    ("fractions as integers", _set(2, data=[1.5, 2]), "input 'n': data of a INT64 tensor must be whole numbers"),
    ("numbers as text", _set(4, data=[1, 2]), "input 'colour': data of a BYTES tensor must be strings"),
    ("data not a list", _set(1, data="12"), "input 'b': data must be a list"),
    ("no data", lambda t: [{k: v for k, v in x.items() if k != "data"} if i == 0 else x for i, x in enumerate(t)],
     "input 'a': no data"),
    ("tensor not an object", lambda t: [*t[:4], "colour"], "inputs[4]: expected an object"),
    ("both data and binary size", _set(0, parameters={"binary_data_size": 16}),
     "input 'a': has both data and binary_data_size"),
]


@pytest.mark.parametrize(("case", "change", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_request_is_left_to_the_careful_reading(case: str, change: Any, message: str) -> None:
    st = state()
    tensors = change(good())
    plan = Plan(st)
    assert plain_columns(good(), plan) is not None  # the well-formed request's form, remembered
    assert plain_columns(copy.deepcopy(tensors), plan) is None
    with pytest.raises(ApiError) as refused:
        InferRequest.parse({"inputs": tensors}, b"", st, max_rows=MAX_ROWS)
    assert refused.value.status == 400 and refused.value.message.startswith(message), refused.value.message


def test_unusual_but_right_tensors_are_read_with_care_alike() -> None:
    st = state()
    plain_rows = InferRequest.parse({"inputs": good()}, b"", st, max_rows=MAX_ROWS).rows
    for tensors in (_set(1, shape=[2, 1])(good()),  # a column vector
                    _set(1, data=[[1], [2.5]])(good()),  # nested data
                    _set(0, extra="ignored")(good())):  # a key the protocol does not define
        assert plain_columns(copy.deepcopy(tensors), Plan(st)) is None
        assert InferRequest.parse({"inputs": tensors}, b"", st, max_rows=MAX_ROWS).rows == plain_rows


def test_too_many_rows_is_413_either_way() -> None:
    st = state()
    big = [{**x, "shape": [11], "data": x["data"][:1] * 11} for x in good()]
    for tensors in (big, _set(0, shape=[11, 1])(big)):
        with pytest.raises(ApiError) as refused:
            InferRequest.parse({"inputs": tensors}, b"", st, max_rows=MAX_ROWS)
        assert refused.value.status == 413
        assert refused.value.message.startswith("input 'a': 11 rows is more than the limit of 10")


def learned(tensors: list[dict[str, Any]], **doc: Any) -> tuple[Plan, Any]:
    """A plan that has read (and learned) the body of this request, as the server does."""
    st = state()
    plan = Plan(st)
    body = json.dumps({"inputs": tensors, **doc}).encode()
    req = InferRequest.parse(orjson.loads(body), b"", st, max_rows=MAX_ROWS, plan=plan)
    assert req.layout is not None
    plan.learn(body, orjson.loads(body), req.layout, req.outputs, req.request_id)
    return plan, st


def other_data(tensors: list[dict[str, Any]], **data: list[Any]) -> list[dict[str, Any]]:
    return [{**t, "data": data.get(t["name"], t["data"])} for t in tensors]


def test_a_body_of_a_learned_form_is_read_as_in_full() -> None:
    tensors = with_label(good())
    tensors[4]["data"] = ['a "quoted" ] bracket, {brace}', "é\\n"]  # strings that look like structure
    plan, st = learned(tensors, id="req-1", outputs=[{"name": "probabilities"}])
    assert len(plan.templates) == 1
    again = other_data(tensors, a=[1e-3, 7], colour=["[x]", None], flag=[False, False])
    body = json.dumps({"inputs": again, "id": "req-1", "outputs": [{"name": "probabilities"}]}).encode()
    known = plan.known(body)
    assert known is not None
    template, values = known
    full = InferRequest.parse(orjson.loads(body), b"", st, max_rows=MAX_ROWS, plan=plan)
    assert table(template.layout.order, values) == full.rows
    assert (template.outputs, template.request_id) == (full.outputs, full.request_id) == (
        [("probabilities", False)], "req-1")


@pytest.mark.parametrize("data", [
    {"b": ["1.0", 2]},  # a string where numbers go
    {"b": [1.0]},  # fewer values than the shape says
    {"b": [None, 2]},  # a null the model does not take
    {"flag": [1, 0]},  # numbers where booleans go
    {"b": [{"x": 1}, 2]},  # an object
])
def test_a_learned_form_with_wrong_data_is_read_in_full(data: dict[str, list[Any]]) -> None:
    tensors = with_label(good())
    plan, _ = learned(tensors)
    assert plan.known(json.dumps({"inputs": other_data(tensors, **data)}).encode()) is None


def test_only_the_data_may_differ_from_a_learned_body() -> None:
    tensors = with_label(good())
    plan, _ = learned(tensors, id="one")
    assert plan.known(json.dumps({"inputs": tensors, "id": "one"}).encode()) is not None
    for body in (json.dumps({"inputs": tensors, "id": "two"}).encode(),  # another id
                 json.dumps({"inputs": tensors, "id": "one"}, indent=1).encode(),  # other spacing
                 json.dumps({"inputs": tensors, "id": "one"}).encode().replace(b"[0.5, null]", b"[0.5,, null]")):
        assert plan.known(body) is None
    # a tensor whose data is given twice (a JSON reader keeps the last): no template is learned
    st = state()
    plan = Plan(st)
    body = json.dumps({"inputs": tensors}).encode().replace(b'"data": [1, 2.5]', b'"data": [9, 9], "data": [1, 2.5]')
    doc = orjson.loads(body)
    req = InferRequest.parse(doc, b"", st, max_rows=MAX_ROWS, plan=plan)
    assert req.layout is not None and req.rows[1]["b"] == 2.5
    plan.learn(body, doc, req.layout, req.outputs, req.request_id)
    assert plan.templates == []


def test_a_version_learns_from_a_bounded_number_of_bodies() -> None:
    st = state()
    plan = Plan(st)
    for n in range(1, LEARNED + 6):  # a new form each time: another number of rows
        tensors = [{**t, "shape": [n], "data": t["data"][:1] * n} for t in with_label(good())]
        body = json.dumps({"inputs": tensors}).encode()
        req = InferRequest.parse(orjson.loads(body), b"", st, max_rows=LEARNED + 6, plan=plan)
        assert req.layout is not None
        plan.learn(body, orjson.loads(body), req.layout, req.outputs, req.request_id)
    assert plan.learned == LEARNED and len(plan.templates) == FORMS


NUMBERS = {"a": "numeric", "b": "numeric", "n": "integer", "flag": "boolean", "label_lag_1": "numeric"}


def one_row() -> list[dict[str, Any]]:
    return [{"name": "a", "shape": [1], "datatype": "FP64", "data": [0.5]},
            {"name": "b", "shape": [1], "datatype": "FP32", "data": [2]},
            {"name": "n", "shape": [1], "datatype": "INT64", "data": [-4]},
            {"name": "flag", "shape": [1], "datatype": "BOOL", "data": [True]},
            {"name": "label_lag_1", "shape": [1], "datatype": "FP64", "data": [1.0]}]


def learned_flat(tensors: list[dict[str, Any]], kinds: dict[str, str] = NUMBERS) -> tuple[Plan, Any]:
    st = state(kinds, nullable=("a",))
    plan = Plan(st)
    body = json.dumps({"inputs": tensors}).encode()
    req = InferRequest.parse(orjson.loads(body), b"", st, max_rows=MAX_ROWS, plan=plan)
    assert req.layout is not None
    plan.learn(body, orjson.loads(body), req.layout, req.outputs, req.request_id)
    return plan, st


def test_a_one_row_form_of_numbers_is_read_as_one_flat_row() -> None:
    tensors = one_row()[::-1]  # in another order than the signature's
    plan, st = learned_flat(tensors)
    assert [t.flat for t in plan.templates] == [True]
    for data in ({}, {"a": [None], "b": [1e-300], "n": [7], "flag": [False]}, {"a": [-0.0], "b": [3]}):
        body = json.dumps({"inputs": other_data(tensors, **data)}).encode()
        known = plan.known(body)
        assert known is not None
        template, values = known
        full = InferRequest.parse(orjson.loads(body), b"", st, max_rows=MAX_ROWS, plan=plan)
        assert [dict(zip(template.layout.order, values, strict=True))] == full.rows
        assert list(full.rows[0]) == list(NUMBERS)  # the signature's order


@pytest.mark.parametrize(("data", "refusal"), [
    ({"b": []}, "input 'b': data has 0 elements, the shape says 1"),
    ({"b": [1, 2]}, "input 'b': data has 2 elements, the shape says 1"),
    # an object: no quote, no comma, so the pattern takes it; its type does not pass
    ({"b": [{}]}, "input 'b': data of a FP32 tensor must be numbers"),
    ({"b": ["1"]}, "input 'b': data of a FP32 tensor must be numbers"),
    ({"b": [True]}, "input 'b': data of a FP32 tensor must be numbers"),
    ({"flag": [1]}, "input 'flag': data of a BOOL tensor must be true or false"),
    ({"b": [[1]]}, None),  # nested: taken, by the reading in full
    ({"b": [None]}, None),  # a null the model does not take: left to the row checks
])
def test_a_flat_form_with_other_data_is_read_in_full(data: dict[str, list[Any]], refusal: str | None) -> None:
    tensors = one_row()
    plan, st = learned_flat(tensors)
    body = json.dumps({"inputs": other_data(tensors, **data)}).encode()
    assert plan.known(body) is None
    if refusal is None:
        request = InferRequest.parse(orjson.loads(body), b"", st, max_rows=MAX_ROWS, plan=plan)
        assert request.checked is None  # the row checks run on it
        assert request.rows[0]["b"] == (1 if data["b"] == [[1]] else None)
        return
    with pytest.raises(ApiError) as refused:
        InferRequest.parse(orjson.loads(body), b"", st, max_rows=MAX_ROWS, plan=plan)
    assert (refused.value.status, refused.value.message) == (400, refusal)


def test_only_one_row_forms_of_numbers_are_flat() -> None:
    two = [{**t, "shape": [2], "data": t["data"] * 2} for t in one_row()]
    plan, _ = learned_flat(two)
    assert [t.flat for t in plan.templates] == [False]
    words = [*one_row(), {"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["red, [x]"]}]
    plan, _ = learned_flat(words, {**NUMBERS, "colour": "categorical"})
    assert [t.flat for t in plan.templates] == [False]
    body = json.dumps({"inputs": other_data(words, colour=["blue"])}).encode()
    known = plan.known(body)
    assert known is not None and table(known[0].layout.order, known[1])[0]["colour"] == "blue"
