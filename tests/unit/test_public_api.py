"""The public API is exactly ``__all__``: every name in it exists, and nothing private leaks into it."""

from __future__ import annotations

import subprocess
import sys

import tidal
import tidal.testing


def test_all_names_resolve() -> None:
    for name in tidal.__all__:
        assert getattr(tidal, name) is not None, name
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
