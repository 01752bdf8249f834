"""The public API is exactly ``__all__``: every name in it exists, and every public name a module exposes is
in it (as httpx's ``tests/test_exported_members.py`` checks), for ``tidal``, ``tidal.testing`` and every
public subpackage that declares an ``__all__``."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import subprocess
import sys
import types

import pytest

import tidal
import tidal.testing


def _public_packages() -> list[str]:
    names = ["tidal", "tidal.testing"]
    for info in pkgutil.walk_packages(tidal.__path__, "tidal."):
        if info.ispkg and not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def _imported_from_elsewhere(module: types.ModuleType, source: str) -> set[str]:
    """The names ``module`` binds by importing them from outside its own package (a package's own package
    is itself; a plain module's is its parent): the standard library, third parties, other tidal packages.
    Those belong to the module that defines them; what a package defines or gathers from its own modules
    is what it exposes."""
    own = module.__name__ if hasattr(module, "__path__") else module.__name__.rpartition(".")[0]
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.ImportFrom):
                source = importlib.util.resolve_name("." * node.level + (node.module or ""), module.__package__)
                if source != own and not source.startswith(own + "."):
                    found.update(alias.asname or alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(ast.parse(source).body)
    return found


def _exposed(module: types.ModuleType, source: str | None = None) -> set[str]:
    elsewhere = _imported_from_elsewhere(module, inspect.getsource(module) if source is None else source)
    return {name for name, value in vars(module).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType) and name not in elsewhere}


PACKAGES = [name for name in _public_packages() if hasattr(importlib.import_module(name), "__all__")]


def test_the_public_packages_are_checked() -> None:
    assert {"tidal", "tidal.testing", "tidal.data", "tidal.monitor", "tidal.serve", "tidal.storage"} <= set(PACKAGES)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_exactly_what_the_package_exposes(name: str) -> None:
    module = importlib.import_module(name)
    declared = list(module.__all__)
    assert len(declared) == len(set(declared)), f"{name}.__all__ repeats a name"
    assert [n for n in declared if not hasattr(module, n)] == [], f"{name}.__all__ names what does not exist"
    # a lazily loaded name (a module __getattr__) is exposed once it is asked for: load them all first
    for n in declared:
        getattr(module, n)
    assert sorted(_exposed(module) - set(declared)) == [], f"{name} exposes names missing from __all__"


def test_the_check_finds_a_missing_name() -> None:
    """The check itself: a public function left out of ``__all__`` is found, an imported helper is not."""
    module = types.ModuleType("tidal_fake_public")
    source = ("from typing import Any\n\ndef shown() -> Any: ...\n\ndef forgotten() -> None: ...\n\n"
              "__all__ = ['shown']\n")
    exec(compile(source, "<fake>", "exec"), module.__dict__)
    module.__package__ = ""
    assert _exposed(module, source) - set(module.__all__) == {"forgotten"}


def test_top_level_names() -> None:
    assert sorted(tidal.__all__) == tidal.__all__
    assert tidal.testing.__all__ == ["check_drift_test", "check_flavor", "check_source"]


def test_import_tidal_is_light() -> None:
    """``import tidal`` must not pull in pandas, scikit-learn or SQLAlchemy (the CLI's --help stays fast)."""
    code = "import sys, tidal; print(sorted(m for m in ('pandas', 'sklearn', 'sqlalchemy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_workspace_is_exported() -> None:
    from tidal.workspace import Workspace

    assert tidal.Workspace is Workspace
