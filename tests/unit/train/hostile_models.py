"""A gallery of hostile skops model files: each names code that writes ``target`` when built or used.

Each maker returns real skops bytes: a fitted pipeline dumped by skops, some then edited in ``schema.json``
the way an attacker with write access to the artifact store would. Shared by the unit gallery and the
serve test.
"""

from __future__ import annotations

import functools
import io
import json
import operator
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

X = np.random.default_rng(0).normal(size=(40, 2))
Y = (X[:, 0] > 0).astype(int)


def pipeline(first: Any = None) -> Pipeline:
    """A fitted two-step pipeline whose first step is ``first`` (an identity FunctionTransformer by default)."""
    pipe = Pipeline([("f", FunctionTransformer()), ("m", LogisticRegression())]).fit(X, Y)
    if first is not None:
        pipe.steps[0] = ("f", first)
    return pipe


def _transformer(func: Any, **kw_args: Any) -> bytes:
    return sio.dumps(pipeline(FunctionTransformer(func=func, kw_args=kw_args or None).fit(X)))


def _json(value: Any) -> dict[str, Any]:
    return {"__class__": type(value).__name__, "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(value), "is_json": True}


def _tuple(*values: Any) -> dict[str, Any]:
    return {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
            "content": [_json(v) for v in values]}


def _empty_dict() -> dict[str, Any]:
    return {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": {},
            "key_types": {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": []}}


def _type(module: str, name: str) -> dict[str, Any]:
    return {"__class__": name, "__module__": module, "__loader__": "TypeNode"}


def edit_schema(data: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """``data`` with its ``schema.json`` changed by ``edit``; every other member kept as it was."""
    src = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(src.read("schema.json"))
    edit(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, json.dumps(schema) if name == "schema.json" else src.read(name))
    return out.getvalue()


def _transformer_attrs(schema: dict[str, Any]) -> dict[str, Any]:
    """The attribute dict node of the pipeline's FunctionTransformer step."""
    stack: list[Any] = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("__class__") == "FunctionTransformer" and item.get("__loader__") == "ObjectNode":
                return dict(item["content"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    raise AssertionError("no FunctionTransformer in the schema")


def injected(node: dict[str, Any]) -> bytes:
    """The identity pipeline with ``node`` added as an attribute of its FunctionTransformer: skops builds it
    while loading the model."""
    def edit(schema: dict[str, Any]) -> None:
        attrs = _transformer_attrs(schema)
        attrs["content"]["payload"] = node
        attrs["key_types"]["content"].append(_type("builtins", "str"))

    return edit_schema(sio.dumps(pipeline()), edit)


def _reduce_node(loader: str, module: str, name: str, *args: Any) -> dict[str, Any]:
    if loader == "ConstructorFromReduceNode":
        return {"__class__": name, "__module__": module, "__loader__": loader, "content": _tuple(*args)}
    return {"__class__": name, "__module__": module, "__loader__": loader,
            "__reduce__": {"args": _tuple(*args)}, "content": _empty_dict()}


def _key_type_gadget(module: str, name: str, key: str) -> dict[str, Any]:
    """A dict whose key type is ``module.name``: skops calls it with the key's text to rebuild the key."""
    node = _empty_dict()
    node["content"][key] = _json(1)
    node["key_types"]["content"].append(_type(module, name))
    return node


def _generator_named(bit_generator: str) -> bytes:
    """A RandomGenerator node whose bit generator name (called by numpy at load) is ``bit_generator``."""
    def edit(schema: dict[str, Any]) -> None:
        stack: list[Any] = [schema]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                if item.get("__loader__") == "RandomGeneratorNode":
                    item["content"]["bit_generator"]["content"]["bit_generator"] = _json(bit_generator)
                    return
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        raise AssertionError("no Generator in the schema")

    holder = FunctionTransformer(kw_args={"rng": np.random.default_rng(0)}).fit(X)
    return edit_schema(sio.dumps(pipeline(holder)), edit)


def _bound_method() -> bytes:
    return _transformer(StandardScaler().fit(X).transform)


def gallery(target: Path) -> dict[str, bytes]:
    """Every hostile file, by a short name; each would write ``target`` (or ``target`` + suffix) if it ran."""
    from numpy._core import _methods
    from scipy.sparse import save_npz
    from sklearn.datasets import dump_svmlight_file

    t = str(target)
    return {
        "FunctionTransformer(numpy._core._methods._dump, file=T)": _transformer(_methods._dump, file=t),
        "FunctionTransformer(numpy.save)": _transformer(np.save, arr=[1]),
        "FunctionTransformer(numpy.savetxt, fname=T)": _transformer(np.savetxt, fname=t),
        "FunctionTransformer(numpy.load)": _transformer(np.load),
        "FunctionTransformer(numpy.loadtxt)": _transformer(np.loadtxt),
        "FunctionTransformer(sklearn.datasets.dump_svmlight_file, f=T)":
            _transformer(dump_svmlight_file, y=np.zeros(len(X)), f=t),
        "FunctionTransformer(scipy.sparse.save_npz)": _transformer(save_npz, matrix=None),
        "FunctionTransformer(operator.methodcaller('tofile', T))": _transformer(operator.methodcaller("tofile", t)),
        "FunctionTransformer(operator.attrgetter('tofile'))": _transformer(operator.attrgetter("tofile")),
        "FunctionTransformer(functools.partial(numpy.save, T))": _transformer(functools.partial(np.save, t)),
        "FunctionTransformer(bound method StandardScaler.transform)": _bound_method(),
        "LossNode constructor os.system('touch T')":
            injected(_reduce_node("LossNode", "os", "system", f"touch {t}")),
        "LossNode constructor builtins.eval(open(T))":
            injected(_reduce_node("LossNode", "builtins", "eval", f"open({t!r}, 'w')")),
        "ConstructorFromReduceNode subprocess.Popen(['touch', T])":
            injected(_reduce_node("ConstructorFromReduceNode", "subprocess", "Popen", ["touch", t])),
        "ConstructorFromReduceNode numpy.memmap(T, mode='w+')":
            injected(_reduce_node("ConstructorFromReduceNode", "numpy", "memmap", t, "uint8", "w+", 0, 4)),
        "LossNode constructor numpy.memmap(T, mode='w+')":
            injected(_reduce_node("LossNode", "numpy", "memmap", t, "uint8", "w+", 0, 4)),
        "ObjectNode numpy.lib._npyio_impl.NpzFile": injected(
            {"__class__": "NpzFile", "__module__": "numpy.lib._npyio_impl", "__loader__": "ObjectNode"}),
        "ObjectNode numpy.lib._datasource.DataSource": injected(
            {"__class__": "DataSource", "__module__": "numpy.lib._datasource", "__loader__": "ObjectNode"}),
        "dict key type builtins.exec(...)": injected(_key_type_gadget(
            "builtins", "exec", f"open({t!r}, 'w').close()")),
        "dict key type numpy.save(T)": injected(_key_type_gadget("numpy", "save", t)),
        "TypeNode os.system as a value": injected(_type("os", "system")),
        "Generator whose bit generator is numpy.random.seed": _generator_named("seed"),
    }


__all__ = ["X", "Y", "edit_schema", "gallery", "injected", "pipeline"]
