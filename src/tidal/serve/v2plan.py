"""The Open Inference Protocol's infer route, made cheap for the request most clients send.

Most infer requests are JSON tensors, one flat ``[n]`` tensor per column, each of a datatype its column
takes, with no parameters (what ``tritonclient.http`` sends without ``binary_data``, and KServe's client).
:func:`plain_columns` reads such a request in one pass over all its tensors at once, with C-level
``map``/``set`` calls instead of Python tests tensor by tensor, using the lookups a :class:`Plan` computes
once per served version and per request form (measured in process, one row of 30 columns: the reading went
from 29 to 16 µs). It either accepts the whole request, with exactly the columns the tensor-by-tensor
reading (:mod:`tidal.serve.v2tensors`) would give, or returns None, and that reading then runs from the
start: it names the first thing wrong, so every refusal and its message stay what they were.

A client sends the same request form again and again, and its JSON writer writes the same bytes around
other data. :meth:`Plan.learn` keeps the bytes of a body read in full and found right as a
:class:`Template` (a regular expression of those bytes, each tensor's data array a group), once it has
checked that the data arrays, and nothing else, sit in the groups; :meth:`Plan.known` then matches the next
body against it and parses only its data arrays, in one orjson call (one row of 30 columns, 2.2 kB: 5.7 µs
for a body orjson takes 7.9 µs to read in full, and no object per tensor to look at). A body that does not
match, bytes for bytes, is read in full.

When the plain reading (or a template) accepts a request, its rows are also known to pass the serving
version's row checks (:meth:`~tidal.predict.inputs.InputSchema.check_rows`: exact value types per column
kind, null only where the model takes it) if no column needs more than a type test (date-times are parsed,
images decoded) and every column was sent (none left to the server's label features): :attr:`Plan.checked`
then says so, and :meth:`~tidal.serve.service.Service.answer` does not check the rows a second time (1,000
rows of 30 columns: 1.3 ms saved).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import orjson

from tidal.predict.state import ServingState

NUMBER_TYPES = frozenset({"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16",
                          "UINT32", "UINT64"})
#: The datatypes each column kind accepts.
ACCEPTED = {"numeric": NUMBER_TYPES, "integer": NUMBER_TYPES, "boolean": frozenset({"BOOL"}),
            "categorical": frozenset({"BYTES"}), "datetime": frozenset({"BYTES"}),
            "image": frozenset({"BYTES", "FP32", "UINT8"})}
#: The datatypes an image column takes as pixels, a tensor of shape [n, channels, height, width].
PIXEL_TYPES = frozenset({"FP32", "UINT8"})
#: The outputs of an infer answer (``probabilities``: a classifier's).
OUTPUTS = ("predict", "probabilities", "prediction_id")
_NULL = type(None)
#: The JSON value types a tensor of each datatype may hold (null: a missing value).
JSON_OK: dict[str, frozenset[type]] = {
    **{t: frozenset({int, float, _NULL}) for t in NUMBER_TYPES if t.startswith("FP")},
    **{t: frozenset({int, _NULL}) for t in NUMBER_TYPES if not t.startswith("FP")},
    "BOOL": frozenset({bool, _NULL}), "BYTES": frozenset({str, _NULL}),
}
#: The same, without null: for a column the model cannot take a missing value in. A null there is left to
#: the careful reading and the row checks, which refuse it saying so.
_NOT_NULL: dict[str, frozenset[type]] = {t: ok - {_NULL} for t, ok in JSON_OK.items()}
#: Column kinds whose row check is more than a test of the value's type.
_DEEP_KINDS = frozenset({"datetime", "image"})
_DATA = itemgetter("data")
#: A tensor's form: all of it but its data.
_FORM = itemgetter("name", "datatype", "shape")
_SHAPE = itemgetter(2)
#: How many request forms a plan remembers (a client sends one or two: its batch sizes).
FORMS = 4

#: The largest body :meth:`Plan.known` reads as a template: matching a larger one costs more than parsing it
#: (measured: 1 row of 30 FP64 tensors, 2.2 kB, 5.7 µs against orjson's 7.9; 1,000 rows, 1.3 ms against 0.6).
TEMPLATE_BYTES = 16384
#: The most bodies one served version learns templates from: a client that keeps changing its request form
#: does not have the server compile a regular expression for each request.
LEARNED = 32
#: A tensor's data in a body, as written: ``"data": [...]``, flat (strings in it whole).
_DATA_TEXT = re.compile(rb'"data"\s*:\s*(\[(?:[^\[\]"\\]|"(?:[^"\\]|\\.)*")*\])')
#: What a template takes in a tensor's place: flat data, with strings (BYTES) or without.
_STRINGS = rb'(\[(?:[^\[\]"\\]|"(?:[^"\\]|\\.)*")*\])'
_NO_STRINGS = rb'(\[[^\[\]"]*\])'
#: The same for a one-row request of numbers or booleans only: the group takes what is inside the brackets,
#: so that all the data read as one flat list (see :meth:`Plan.known`).
_ONE_VALUE = rb'\[([^\[\]",]*)\]'
#: A function that picks some items of a sequence, in some order.
Picker = Callable[[Sequence[Any]], Sequence[Any]]


class Layout:
    """How the plain tensors of one request form are read: the rows, the columns they give (in the
    signature's order) and which tensor's data each is, and the tensors grouped by the value types their data
    may hold."""

    __slots__ = ("complete", "groups", "learned", "order", "pick", "rows")

    def __init__(self, rows: int, order: tuple[str, ...], pick: Picker, groups: list[tuple[Picker, frozenset[type]]],
                 complete: bool) -> None:
        self.rows = rows
        self.order = order
        self.pick = pick
        self.groups = groups
        #: Every column of the signature is sent (no label feature left for the server to fill).
        self.complete = complete
        #: How many bodies of this form a :class:`Template` was learned from (tried at most twice).
        self.learned = 0

    def values(self, datas: Sequence[Any]) -> Sequence[list[Any]] | None:
        """The columns' values (in :attr:`order`) of these tensors' data (lists, in the request's order), when
        each holds :attr:`rows` values of types its datatype takes; None otherwise."""
        if set(map(len, datas)) != {self.rows}:
            return None
        for pick, ok in self.groups:
            if not set(map(type, chain.from_iterable(pick(datas)))) <= ok:
                return None
        return self.pick(datas)

    def one(self, flat: Sequence[Any]) -> Sequence[Any] | None:
        """The one row's values (in :attr:`order`) of a one-row request whose tensors' values are ``flat``
        (one a tensor, in the request's order), when each is of a type its datatype takes; None otherwise."""
        for pick, ok in self.groups:
            if not set(map(type, pick(flat))) <= ok:
                return None
        return self.pick(flat)


class Template:
    """The bytes of a request body that was read and found right, but for the data of its tensors: a body of
    the same bytes around other data is the same request with that data (same tensors, shapes, id, outputs),
    read without parsing the whole of it again. See :meth:`Plan.known`."""

    __slots__ = ("flat", "layout", "outputs", "pattern", "request_id")

    def __init__(self, pattern: re.Pattern[bytes], layout: Layout, outputs: list[tuple[str, bool]],
                 request_id: str | None, flat: bool = False) -> None:
        self.pattern = pattern
        self.layout = layout
        self.outputs = outputs
        self.request_id = request_id
        #: A one-row form without strings: each group is what is inside a tensor's brackets, without a comma
        #: (:data:`_ONE_VALUE`), so the data are read as one flat list, one value a tensor, with no list per tensor.
        self.flat = flat


class Plan:
    """What the infer route needs of one served version, computed once (when the version first answers an
    infer request) rather than on every request."""

    def __init__(self, state: ServingState) -> None:
        self.state = state
        sig = state.mv.signature
        kinds = sig.columns
        nullable = state.schema.nullable
        #: (column, datatype) → the JSON value types that tensor's data may hold, for every datatype its
        #: column takes as flat JSON data (an image's pixels are a 4-d tensor: never plain).
        self.accept: dict[tuple[str, str], frozenset[type]] = {
            (c, dt): (JSON_OK if c in nullable else _NOT_NULL)[dt]
            for c, k in kinds.items() for dt in ACCEPTED.get(k, ()) if not (k == "image" and dt in PIXEL_TYPES)}
        derived = set(sig.derived)
        #: The columns a request must send (the label features the server fills may be left out).
        self.required = frozenset(c for c in kinds if c not in derived)
        self.columns = tuple(kinds)
        #: Whether rows the plain reading accepts with every column pass the row checks as they are.
        self.checked = not any(k in _DEEP_KINDS for k in kinds.values())
        #: The forms of the last requests read (each tensor's name, datatype and shape), newest first, and
        #: their layouts: a client sends the same form request after request, so its layout is worked out once.
        self.forms: list[tuple[list[tuple[Any, Any, Any]], Layout]] = []
        #: The bodies of the last request forms, less their data (:meth:`learn`), newest first.
        self.templates: list[Template] = []
        #: How many bodies were learned from (a regular expression compiled each): at most :data:`LEARNED`.
        self.learned = 0
        #: The outputs answered when a request names none: every one, binary or not (never changed).
        self.outputs = {binary: [(o, binary) for o in OUTPUTS if o != "probabilities" or state.classes is not None]
                        for binary in (False, True)}
        #: The datatype of each output (of ``predict``: after the classes, :func:`predict_datatype`).
        self.datatypes = datatypes(state)

    def layout(self, form: list[tuple[Any, Any, Any]]) -> Layout | None:
        """The layout of tensors of this form (each tensor's name, datatype and shape); None when a name is
        unknown, a datatype one its column does not take, a column given twice or a required one missing, or
        a shape other than ``[n]`` with the same ``n > 0`` for all. A shape of ``[true]`` or ``[1.0]`` is equal
        to ``[1]`` here: the caller checks that the shapes hold whole numbers."""
        for known, layout in self.forms:
            if known == form:
                return layout
        try:
            oks = [self.accept[name, datatype] for name, datatype, _ in form]
        except (KeyError, TypeError):  # unknown, or not text (a list, an object: unhashable)
            return None
        shapes = list(map(_SHAPE, form))
        first = shapes[0]
        if type(first) is not list or len(first) != 1 or type(first[0]) is not int or first[0] <= 0:
            return None
        if shapes.count(first) != len(shapes) or set(map(type, shapes)) != {list}:
            return None
        index = {c: i for i, (c, _, _) in enumerate(form)}
        if len(index) != len(form) or not index.keys() >= self.required:
            return None
        order = tuple(c for c in self.columns if c in index)
        by_ok: dict[frozenset[type], list[int]] = {}
        for i, ok in enumerate(oks):
            by_ok.setdefault(ok, []).append(i)
        layout = Layout(first[0], order, _picker([index[c] for c in order], len(form)),
                        [(_picker(at, len(form)), ok) for ok, at in by_ok.items()], len(order) == len(self.columns))
        self.forms = [(form, layout), *self.forms[:FORMS - 1]]
        return layout

    def known(self, body: bytes) -> tuple[Template, Sequence[Any]] | None:
        """The template ``body`` fits, and its columns' values, when it is a learned body with other data
        (each tensor's values of the types its datatype takes, as many as its shape says); None otherwise:
        the body is then read in full. The values: a list per column, or for a :attr:`Template.flat`
        template the one row's values, a value per column."""
        if len(body) > TEMPLATE_BYTES:
            return None
        for template in self.templates:
            match = template.pattern.fullmatch(body)
            if match is None:
                continue
            groups = match.groups()
            try:
                datas = orjson.loads(b"[" + b",".join(groups) + b"]")
            except orjson.JSONDecodeError:  # e.g. an empty tensor's [] in a flat template: read in full
                return None
            if len(datas) != len(groups):
                return None
            layout = template.layout
            # flat: no group holds a comma and each parsed to one value, so each tensor has exactly one
            values = layout.one(datas) if template.flat else layout.values(datas)
            return None if values is None else (template, values)
        return None

    def learn(self, body: bytes, doc: dict[str, Any], layout: Layout, outputs: list[tuple[str, bool]],
              request_id: str | None) -> None:
        """Keep ``body`` (read in full and found right: ``doc``, whose tensors have ``layout``) as a template, if
        its tensors' data can be told apart from the rest of its bytes: each tensor's ``"data": [...]`` found in
        the bytes, in order, and the body with other data there reads as ``doc`` with that data."""
        if layout.learned >= 2 or self.learned >= LEARNED or len(body) > TEMPLATE_BYTES:
            return
        layout.learned += 1
        self.learned += 1
        tensors = doc["inputs"]
        spans = [m.span(1) for m in _DATA_TEXT.finditer(body)]
        if len(spans) != len(tensors):
            return
        pieces, at = [], 0
        for start, end in spans:
            pieces.append(body[at:start])
            at = end
        pieces.append(body[at:])
        # A numeric or boolean tensor's data holds no strings (no quote: a string in it could hide a bracket).
        # One row of them: each tensor's one value, read into one flat list (see Template.flat).
        flat = layout.rows == 1 and all(t["datatype"] != "BYTES" for t in tensors)
        slots = [_ONE_VALUE if flat else _STRINGS if t["datatype"] == "BYTES" else _NO_STRINGS for t in tensors]
        pattern = re.compile(b"".join(re.escape(piece) + slot for piece, slot in zip(pieces, slots, strict=False))
                             + re.escape(pieces[-1]), re.DOTALL)
        # Each slot is where its tensor's data is, and nothing else: the body with the k-th data replaced by
        # [k] reads as the request with those data.
        probe = b"".join(piece + (b"[%d]" % k if k < len(spans) else b"") for k, piece in enumerate(pieces))
        expected = {**doc, "inputs": [{**t, "data": [k]} for k, t in enumerate(tensors)]}
        try:
            if pattern.fullmatch(body) is None or orjson.loads(probe) != expected:
                return
        except orjson.JSONDecodeError:
            return
        self.templates = [Template(pattern, layout, outputs, request_id, flat), *self.templates[:FORMS - 1]]


def _picker(at: list[int], size: int) -> Picker:
    """A function that picks the items at ``at`` (in that order) from a sequence of ``size``, as a sequence."""
    if at == list(range(size)):
        return _same
    if len(at) == 1:
        return lambda seq: (seq[at[0]],)
    return itemgetter(*at)


def _same(seq: Sequence[Any]) -> Sequence[Any]:
    return seq


def plain_columns(tensors: Sequence[Any], plan: Plan) -> tuple[Layout, Sequence[list[Any]]] | None:
    """The layout (the columns in the signature's order, the rows) and the columns' values of a request of
    plain JSON tensors that is right: each an object of exactly ``name``, ``shape``, ``datatype`` and
    ``data``, of a known column, given once, of a datatype the column takes, shape ``[n]`` with the same
    ``n > 0`` for all, and ``n`` values of that datatype (null only where the model takes it); every
    required column present. None otherwise: the careful reading then says what is wrong, or reads what is
    right but not plain
    (binary data, nested data, shape ``[n, 1]``, a null the row checks refuse)."""
    try:
        datas = list(map(_DATA, tensors))
        form = list(map(_FORM, tensors))
    except (KeyError, TypeError):  # a tensor that is not an object, or lacks one of the four
        return None
    layout = plan.layout(form)
    if layout is None:
        return None
    # The four keys and no other (parameters: binary data); data lists; shapes of whole numbers (the layout's
    # shapes are equal to [n], and True == 1, 1.0 == 1).
    if (sum(map(len, tensors)) != 4 * len(tensors) or set(map(type, datas)) != {list}
            or set(map(type, chain.from_iterable(map(_SHAPE, form)))) != {int}):
        return None
    values = layout.values(datas)
    return None if values is None else (layout, values)


def datatypes(state: ServingState) -> dict[str, str]:
    """The datatype of each output of ``state``'s answers."""
    return {"predict": predict_datatype(state), "probabilities": "FP64", "prediction_id": "BYTES"}


def predict_datatype(state: ServingState) -> str:
    """The datatype of the ``predict`` output: FP64 for a regressor, after the classes for a classifier."""
    classes = state.classes
    if classes is None:
        return "FP64"
    types = set(map(type, classes))
    if types == {bool}:
        return "BOOL"
    if types == {int}:
        return "INT64"
    if types <= {int, float}:
        return "FP64"
    return "BYTES"


__all__ = [
    "ACCEPTED",
    "FORMS",
    "JSON_OK",
    "LEARNED",
    "NUMBER_TYPES",
    "OUTPUTS",
    "PIXEL_TYPES",
    "TEMPLATE_BYTES",
    "Layout",
    "Plan",
    "Template",
    "datatypes",
    "plain_columns",
    "predict_datatype",
]
