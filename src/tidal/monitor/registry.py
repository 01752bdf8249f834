"""The table of drift tests, by name: the built-ins plus whatever a plugin registers.

    from tidal.monitor import get_drift_test, register_drift_test
    ks = get_drift_test("ks")
    register_drift_test(MY_TEST)          # replaces a test of the same name
    get_drift_test("kss")                 # PluginNotFound: unknown drift test 'kss' — did you mean 'ks'?
"""

from __future__ import annotations

from tidal.core.errors import PluginNotFound
from tidal.monitor.base import DriftTest
from tidal.monitor.stattests import BUILTIN_TESTS

_tests: dict[str, DriftTest] = {}


def _register_builtins() -> None:
    for test in BUILTIN_TESTS:
        _tests[test.name] = test


_register_builtins()


def register_drift_test(test: DriftTest) -> DriftTest:
    """Add ``test`` to the table (a test of the same name is replaced); returns it."""
    if not isinstance(test, DriftTest):
        raise TypeError(f"{test!r} is not a tidal.monitor.DriftTest")
    _tests[test.name] = test
    return test


def get_drift_test(name: str) -> DriftTest:
    """The drift test called ``name``; :class:`~tidal.core.errors.PluginNotFound` (listing the known
    names) when there is none."""
    try:
        return _tests[name]
    except KeyError:
        raise PluginNotFound("drift test", name, _tests) from None


def known_drift_tests() -> list[str]:
    """The names of every registered drift test, sorted."""
    return sorted(_tests)


def unregister_drift_test(name: str) -> None:
    """Remove the test called ``name`` (a no-op if there is none); built-ins come back on
    :func:`reset_drift_tests`."""
    _tests.pop(name, None)


def reset_drift_tests() -> None:
    """Back to the built-in tests only."""
    _tests.clear()
    _register_builtins()


__all__ = ["get_drift_test", "known_drift_tests", "register_drift_test", "reset_drift_tests",
           "unregister_drift_test"]
