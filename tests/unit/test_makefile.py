"""``make demo`` installs what the demo needs and no more; ``make test`` adds the developer tools; each works
first on a fresh machine and after the other (issue #10, point 0). Checked with ``make -n`` (what make would
run), on a copy of the Makefile with a stand-in ``.venv``."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

#: What `make test` installs: torch pinned first (the CPU build where one is provided), then tidal and its extras.
DEV_INSTALLS = [".venv/bin/python -m pip install -q torch==2.13.0",
                ".venv/bin/python -m pip install -q -e "
                "'.[dev,postgres,mysql,online,corpus,xgboost,lightgbm,torch,images,onnx,examples,search,stream,s3,ray]'"]

#: KServe's client, in a venv of its own (its pins do not fit tidal's): for tests/serve/test_v2_kserve.py.
KSERVE_INSTALLS = [".venv-kserve/bin/python -m pip install -q -r tests/serve/kserve/requirements.txt"]


def _plan(folder: Path, *targets: str) -> list[str]:
    # Under CI this test itself runs inside `make test`: the inherited MAKELEVEL/MAKEFLAGS would make the
    # inner make print "Entering directory" lines, so it runs as a top-level make.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}
    out = subprocess.run(["make", "--no-print-directory", "-n", *targets], cwd=folder, capture_output=True,
                         text=True, timeout=30, check=True, env=env).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    for name in ("Makefile", "pyproject.toml", "tests/serve/kserve/requirements.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def _venv(folder: Path, *stamps: str) -> None:
    """A stand-in .venv that make sees as created (and, per stamp, installed) after pyproject.toml."""
    past = time.time() - 60
    os.utime(folder / "pyproject.toml", (past, past))
    (folder / ".venv" / "bin").mkdir(parents=True)
    (folder / ".venv" / "bin" / "python").write_text("")
    for stamp in stamps:
        (folder / ".venv" / stamp).write_text("")


def test_demo_first_creates_the_venv_and_installs_tidal_alone(checkout: Path) -> None:
    plan = _plan(checkout, "demo")
    assert plan[0].endswith("-m venv .venv")
    installs = [line for line in plan if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [".venv/bin/python -m pip install -q -e ."]
    assert ".venv/bin/tidal demo" in plan


def test_test_first_creates_the_venv_and_installs_the_dev_tools(checkout: Path) -> None:
    plan = _plan(checkout, "test")
    assert plan[0].endswith("-m venv .venv")
    installs = [line for line in plan if "pip install" in line and "--upgrade pip" not in line]
    assert installs == [*DEV_INSTALLS, *KSERVE_INSTALLS]
    assert plan[-1] == "TIDAL_TEST_KSERVE_PYTHON=.venv-kserve/bin/python .venv/bin/pytest -q"


def test_test_after_demo_adds_the_dev_tools_to_the_same_venv(checkout: Path) -> None:
    _venv(checkout, ".stamp-runtime")
    plan = _plan(checkout, "test")
    assert not any(line.endswith("-m venv .venv") for line in plan)  # (.venv-kserve is another venv)
    assert all(line in plan for line in DEV_INSTALLS)


def test_demo_after_test_installs_nothing_more(checkout: Path) -> None:
    _venv(checkout, ".stamp-runtime", ".stamp-dev")
    assert not any("pip install" in line for line in _plan(checkout, "demo"))
    assert _plan(checkout, "demo")[0] == ".venv/bin/tidal demo"


def test_corpus_installs_the_dev_and_corpus_packages_then_runs_the_corpus_bench(checkout: Path) -> None:
    plan = _plan(checkout, "corpus")
    installs = [line for line in plan if "pip install" in line and "--upgrade pip" not in line]
    assert installs == DEV_INSTALLS
    assert plan[-1] == ".venv/bin/python bench/corpus.py"
    _venv(checkout, ".stamp-runtime", ".stamp-dev")  # after `make test`: nothing more to install
    assert _plan(checkout, "corpus") == [".venv/bin/python bench/corpus.py"]


#: The system's Chromium for the dashboard's browser tests: apt-get as root, a skip elsewhere.
CHROMIUM_CHECK = "if command -v chromium >/dev/null; then :;"


def test_test_installs_chromium_for_the_browser_tests_once(checkout: Path) -> None:
    plan = _plan(checkout, "test")
    start = [i for i, line in enumerate(plan) if line.startswith(CHROMIUM_CHECK)]
    assert len(start) == 1
    recipe = " ".join(plan[start[0]:plan.index("touch .venv/.stamp-chromium")])
    assert '[ "$(id -u)" = 0 ] && command -v apt-get' in recipe and "apt-get install -y -q chromium" in recipe
    assert plan.index("touch .venv/.stamp-chromium") < len(plan) - 1  # before pytest runs
    _venv(checkout, ".stamp-runtime", ".stamp-dev", ".stamp-chromium")
    assert not any(line.startswith(CHROMIUM_CHECK) for line in _plan(checkout, "test"))
