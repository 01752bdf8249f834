"""The layout rules of ``tidal.storage`` (see its docstring): which modules are public, that nothing outside
the package imports a private one, and that its modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STORAGE = ROOT / "src" / "tidal" / "storage"

#: The public modules: the package, the modules that define an adapter class, and the testing module.
PUBLIC = {
    "tidal.storage",
    "tidal.storage.artifacts",
    "tidal.storage.memory",
    "tidal.storage.testing",
    "tidal.storage.sql",
    "tidal.storage.sql.store",
    "tidal.storage.predictions",
    "tidal.storage.predictions.memory_log",
    "tidal.storage.predictions.sql_log",
    "tidal.storage.study",  # Optuna's storage for model.search, opened by the workspace
}
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT / "src").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _storage_modules() -> list[Path]:
    # The Alembic scripts under sql/migrations are run by Alembic from their folder, never imported.
    return sorted(p for p in STORAGE.rglob("*.py") if "migrations" not in p.relative_to(STORAGE).parts)


def _is_private(module: str) -> bool:
    return module.startswith("tidal.storage.") and any(
        part.startswith("_") for part in module.split(".")[2:])


def test_every_storage_module_is_public_or_underscored() -> None:
    names = {_module_name(p) for p in _storage_modules()}
    assert names >= PUBLIC, PUBLIC - names
    neither = sorted(n for n in names - PUBLIC if not n.rsplit(".", 1)[-1].startswith("_"))
    assert neither == [], f"{neither}: add them to the public list in tidal.storage's docstring, or prefix with _"


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def test_nothing_outside_storage_imports_a_private_storage_module() -> None:
    files = [p for folder in ("src", "tests", "bench", "examples") for p in (ROOT / folder).rglob("*.py")
             if STORAGE not in p.parents]
    assert len(files) > 50
    bad = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in files
           for line, name in _imported(ast.parse(p.read_text(encoding="utf-8"))) if _is_private(name)]
    assert bad == [], "import the public names (tidal.storage, tidal.storage.testing) instead:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", _storage_modules(), ids=lambda p: str(p.relative_to(STORAGE)))
def test_storage_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines: split it (near {MAX_LINES})"
