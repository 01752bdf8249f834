"""The Open Inference Protocol's input tensors read one by one, with care (:mod:`tidal.serve.v2`): JSON data
(flat or nested), binary data (the binary tensor extension), images as pixels; every refusal an ApiError 400
(or 413) naming the tensor and what is wrong with it. The plain JSON requests most clients send are read
faster, by :mod:`tidal.serve.v2plan`; whatever that reading does not take comes here."""

from __future__ import annotations

from typing import Any

import numpy as np

from tidal.predict.errors import ApiError, name, names
from tidal.predict.inputs import parse_json
from tidal.predict.state import ServingState
from tidal.serve.v2plan import ACCEPTED, JSON_OK, NUMBER_TYPES, PIXEL_TYPES

#: The datatype of each column kind in the model metadata.
KIND_DATATYPE = {"numeric": "FP64", "integer": "INT64", "boolean": "BOOL", "categorical": "BYTES",
                 "datetime": "BYTES", "image": "BYTES"}
#: numpy's little-endian dtype of each fixed-size datatype.
NUMPY = {"BOOL": "?", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "UINT8": "<u1",
         "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}


def careful(tensors: list[Any], state: ServingState, binary: bytes, max_rows: int) -> dict[str, list[Any]]:
    """The columns of the request's tensors read one by one, with care; raises ApiError 400 or 413 naming the
    first thing wrong."""
    kinds = state.mv.signature.columns
    columns: dict[str, list[Any]] = {}
    rows = -1
    offset = 0
    view = memoryview(binary)
    for i, tensor in enumerate(tensors):
        (col, values, n), offset = _tensor(i, tensor, state, columns, rows, view, offset)
        if rows == -1:
            if n > max_rows:
                raise ApiError(413, f"input {name(col)}: {n} rows is more than the limit of {max_rows} per "
                                    "request (deploy.max_rows); split the request")
            rows = n
        columns[col] = values
    if offset != len(view):
        raise ApiError(400, f"the body has {len(view) - offset} bytes of binary data beyond what the inputs' "
                            "binary_data_size account for (or Inference-Header-Content-Length is wrong)")
    derived = state.mv.signature.derived
    missing = [c for c in kinds if c not in columns and c not in derived]
    if missing:
        raise ApiError(400, f"missing input{'s' if len(missing) > 1 else ''} {names(missing)}; the model takes "
                            f"{names(kinds)}, one tensor per column (see GET /v2/models/{state.name})")
    return columns


def _tensor(i: int, tensor: Any, state: ServingState, columns: dict[str, list[Any]], rows: int, view: memoryview,
            offset: int) -> tuple[tuple[str, list[Any], int], int]:
    """A tensor read with care: its column, values and rows, and the offset of the next binary data; raises
    ApiError 400 that names what is wrong."""
    kinds = state.mv.signature.columns
    where = f"inputs[{i}]"
    if type(tensor) is not dict:
        raise ApiError(400, f"{where}: expected an object with name, shape, datatype and data")
    col = tensor.get("name")
    if type(col) is not str:
        raise ApiError(400, f"{where}.name: expected the name of an input column (a string)")
    if col not in kinds:
        raise ApiError(400, f"{where}: unknown input {name(col)}; the model takes {names(kinds)} "
                            f"(see GET /v2/models/{state.name})")
    if col in columns:
        raise ApiError(400, f"{where}: input {name(col)} is given twice")
    where = f"input {name(col)}"
    kind = kinds[col]
    datatype = tensor.get("datatype")
    if type(datatype) is not str or datatype not in ACCEPTED.get(kind, ()):
        want = KIND_DATATYPE.get(kind, "BYTES")
        also = " (or another FP, INT or UINT type)" if want in NUMBER_TYPES else ""
        raise ApiError(400, f"{where}: datatype {name(datatype)} does not fit a {kind} column; send {want}{also}")
    if kind == "image" and datatype in PIXEL_TYPES:
        return _pixels(tensor, datatype, rows, view, offset, where)
    n = _rows_of(tensor.get("shape"), where)
    if n == 0:
        raise ApiError(400, f"{where}: shape [0]: send at least one row")
    if rows != -1 and n != rows:
        raise ApiError(400, f"{where}: shape says {n} rows where the inputs before it have {rows}; every input "
                            "must have one element per row")
    tparams = tensor.get("parameters") or {}
    if type(tparams) is not dict:
        raise ApiError(400, f"{where}.parameters: expected an object")
    size = tparams.get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0:
            raise ApiError(400, f"{where}: binary_data_size must be a whole number of bytes")
        if "data" in tensor:
            raise ApiError(400, f"{where}: has both data and binary_data_size; send one of them")
        if offset + size > len(view):
            raise ApiError(400, f"{where}: binary_data_size says {size} bytes, only {len(view) - offset} remain "
                                "after the JSON header (Inference-Header-Content-Length) and the inputs before it")
        raw = view[offset:offset + size]
        values = (_bytes_elements(raw, n, where, text=False) if kind == "image" and datatype == "BYTES"
                  else _from_binary(raw, datatype, n, where))
        return (col, values, n), offset + size
    if "data" not in tensor:
        raise ApiError(400, f"{where}: no data: send data, or binary_data_size in its parameters and the bytes "
                            "after the JSON header")
    return (col, _from_json(tensor["data"], datatype, n, where), n), offset


def _pixels(tensor: dict[str, Any], datatype: str, rows: int, view: memoryview, offset: int,
            where: str) -> tuple[tuple[str, list[Any], int], int]:
    """An image column sent as pixels: a tensor of shape [n, channels, height, width] (or [n, height, width]
    for grey), values whole numbers 0-255; each row's image as nested lists, checked as /predict checks them."""
    shape = tensor.get("shape")
    if (type(shape) is not list or len(shape) not in (3, 4) or any(type(d) is not int or d <= 0 for d in shape)):
        raise ApiError(400, f"{where}: an image tensor of {datatype} must have shape [rows, channels, height, "
                            "width] (or [rows, height, width] for grey images)")
    n, count = shape[0], int(np.prod(shape))
    if rows != -1 and n != rows:
        raise ApiError(400, f"{where}: shape says {n} rows where the inputs before it have {rows}; every input "
                            "must have one element per row")
    tparams = tensor.get("parameters") or {}
    size = tparams.get("binary_data_size") if type(tparams) is dict else None
    if size is not None:
        if type(size) is not int or size < 0 or offset + size > len(view):
            raise ApiError(400, f"{where}: binary_data_size must be a whole number of bytes within the body")
        values = np.asarray(_from_binary(view[offset:offset + size], datatype, count, where))
        offset += size
    else:
        values = np.asarray(_from_json(tensor.get("data"), datatype, count, where), dtype=object)
    if any(v is None for v in values.tolist()):
        raise ApiError(400, f"{where}: an image has no missing pixels; send whole numbers 0-255")
    number = values.astype(np.float64)
    if not (np.isfinite(number).all() and (number == np.round(number)).all()):
        raise ApiError(400, f"{where}: pixel values must be whole numbers from 0 to 255 (8-bit pixels, as "
                            "training read them)")
    pixels = number.astype(np.int64).reshape(shape)
    return (str(tensor["name"]), [image.tolist() for image in pixels], n), offset


def split_body(body: bytes, header_length: bytes | None) -> tuple[Any, bytes]:
    """The JSON header of an infer body and the binary data after it."""
    if header_length is None:
        return parse_json(body), b""
    try:
        n = int(header_length)
    except ValueError:
        raise ApiError(400, "the Inference-Header-Content-Length header is not a number") from None
    if not 0 < n <= len(body):
        raise ApiError(400, f"Inference-Header-Content-Length is {n}, the body has {len(body)} bytes: it must give "
                            "the length of the JSON header at the start of the body")
    return parse_json(body[:n]), body[n:]


def _rows_of(shape: Any, where: str) -> int:
    if (type(shape) is not list or not 1 <= len(shape) <= 2 or any(type(d) is not int or d < 0 for d in shape)
            or (len(shape) == 2 and shape[1] != 1)):
        raise ApiError(400, f"{where}: shape must be [rows] or [rows, 1] (one tensor per column)")
    return int(shape[0])


def _flatten(data: Any) -> list[Any]:
    if type(data) is not list:
        raise ApiError(400, "data: expected a list")
    if not data or type(data[0]) is not list:
        return data
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item) if type(item) is list else [item])
    return out


_JSON_TEXT = {"BOOL": "true or false", "BYTES": "strings"}


def _from_json(data: Any, datatype: str, n: int, where: str) -> list[Any]:
    try:
        values = _flatten(data)
    except ApiError:
        raise ApiError(400, f"{where}: data must be a list (flat or nested, row-major)") from None
    if len(values) != n:
        raise ApiError(400, f"{where}: data has {len(values)} elements, the shape says {n}")
    if not set(map(type, values)) <= JSON_OK[datatype]:
        text = _JSON_TEXT.get(datatype) or ("numbers" if datatype.startswith("FP") else "whole numbers")
        raise ApiError(400, f"{where}: data of a {datatype} tensor must be {text}")
    return values


def _from_binary(raw: memoryview, datatype: str, n: int, where: str) -> list[Any]:
    if datatype == "BYTES":
        return _bytes_elements(raw, n, where)
    itemsize = np.dtype(NUMPY[datatype]).itemsize
    if len(raw) != n * itemsize:
        raise ApiError(400, f"{where}: binary_data_size is {len(raw)} bytes, {n} {datatype} elements take "
                            f"{n * itemsize}")
    if datatype == "BOOL" and any(b > 1 for b in raw.tobytes()):
        raise ApiError(400, f"{where}: a BOOL element must be the byte 0 or 1")
    array = np.frombuffer(raw, dtype=NUMPY[datatype])
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            if np.isinf(array).any():
                raise ApiError(400, f"{where}: infinity is not a value the model takes (NaN is a missing value)")
            return [None if v != v else v for v in array.astype(np.float64).tolist()]
        return array.astype(np.float64).tolist()  # type: ignore[no-any-return]
    return array.tolist()  # type: ignore[no-any-return]


def _bytes_elements(raw: memoryview, n: int, where: str, *, text: bool = True) -> list[Any]:
    out: list[Any] = []
    data = raw.tobytes()
    pos, end = 0, len(data)
    try:
        while pos < end:
            if pos + 4 > end:
                raise ValueError
            length = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
            if pos + length > end:
                raise ValueError
            element = data[pos:pos + length]
            out.append(element.decode("utf-8") if text else element)  # an encoded image stays bytes
            pos += length
    except UnicodeDecodeError:
        raise ApiError(400, f"{where}: a BYTES element is not UTF-8 text") from None
    except ValueError:
        raise ApiError(400, f"{where}: the BYTES data does not match binary_data_size (each element is a 4-byte "
                            "little-endian length, then that many bytes)") from None
    if len(out) != n:
        raise ApiError(400, f"{where}: the binary data holds {len(out)} BYTES elements, the shape says {n}")
    return out


__all__ = ["KIND_DATATYPE", "NUMPY", "careful", "split_body"]
