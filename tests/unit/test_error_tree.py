"""Every exception class tidal defines is in the one tree of ``tidal.core.errors`` (see its docstring).

The rule: a class tidal defines is a ``TidalError`` (a warning: a ``TidalWarning``), and the tree in the
docstring of ``tidal.core.errors`` names it; the only others are internal control flow, raised and caught
inside one package and never escaping a public call, listed in :data:`INTERNAL` with where they are caught.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import tidal
from tidal.core import errors

#: Exceptions that never leave the package that raises them: (module, class name) → where they are caught.
INTERNAL = {
    ("tidal.ui.jobs", "Busy"): "tidal.ui.api's POST /backtests, which answers 409 with the running job",
    ("tidal.serve.body", "ClientGone"): "tidal.serve.app, which answers 400 or drops the request",
    ("tidal.storage.predictions.sql_log", "_RepeatedId"): "the same module, which re-reads the repeated id",
    ("tidal.storage.predictions._batch_codec", "Unreadable"): "the prediction log, which skips the batch",
    ("tidal.storage.predictions._sql_archive", "_Changed"): "the same module's archive loop, which redoes the day "
                                                           "(three tries, then a StorageError)",
    ("tidal.loop.alerts", "_Retry"): "tidal.loop.alerts.Alerts._send, which retries it, then records an alert.failed "
                                     "event",
    ("tidal.data.sources.fetch", "_Transient"): "tidal.data.sources.fetch.Fetcher.get, which retries it, then raises "
                                                "a SourceError",
    ("tidal.data.sources.stream", "_Down"): "tidal.data.sources.stream.Broker.connect, which retries it for "
                                            "retry_for, then raises a SourceError",
    ("tidal.data.images.codec", "ImageProblem"): "tidal.data.images (collect, prepare, profile), which name the image "
                                                 "and skip it or raise a DataError",
    # A BaseException on purpose, like KeyboardInterrupt: no `except Exception` may swallow a stop signal.
    ("tidal.cli.failures", "Terminated"): "tidal.cli.main, which exits 143 after the finally blocks ran",
}


def _tidal_exception_classes() -> list[type[BaseException]]:
    for info in pkgutil.walk_packages(tidal.__path__, "tidal."):
        if not info.name.endswith("__main__"):  # running it runs the CLI
            importlib.import_module(info.name)
    found: set[type[BaseException]] = set()
    todo: list[type[BaseException]] = [BaseException]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return sorted((c for c in found if c.__module__.split(".")[0] == "tidal"),
                  key=lambda c: (c.__module__, c.__qualname__))


CLASSES = _tidal_exception_classes()


def test_the_walk_finds_classes_outside_core() -> None:
    modules = {c.__module__ for c in CLASSES}
    assert {"tidal.core.errors", "tidal.predict.errors", "tidal.spec.gates",
            "tidal.storage.predictions.sql_log"} <= modules


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_exception_class_is_in_the_tree(cls: type[BaseException]) -> None:
    if (cls.__module__, cls.__qualname__) in INTERNAL:
        assert not issubclass(cls, errors.TidalError)
        return
    if issubclass(cls, Warning):
        assert issubclass(cls, errors.TidalWarning), f"{cls.__qualname__} is a warning but not a TidalWarning"
    else:
        assert issubclass(cls, errors.TidalError), (
            f"{cls.__module__}.{cls.__qualname__} is not a TidalError: derive it from the right branch of "
            "tidal.core.errors, or list it in INTERNAL if it never escapes the package that raises it")
    assert f" {cls.__qualname__} " in (errors.__doc__ or ""), (
        f"{cls.__qualname__} is missing from the tree in the docstring of tidal.core.errors")


def test_internal_exceptions_still_exist() -> None:
    defined = {(c.__module__, c.__qualname__) for c in CLASSES}
    assert set(INTERNAL) <= defined


def test_not_found_is_a_lookup_error_with_a_plain_message() -> None:
    exc = errors.RunNotFound("no run 'abc'")
    assert isinstance(exc, LookupError) and not isinstance(exc, KeyError)
    assert not isinstance(exc, errors.StorageError)
    assert str(exc) == "no run 'abc'"  # not repr-quoted, as a KeyError's would be
    assert issubclass(errors.ModelNotFound, errors.RegistryError) and issubclass(errors.ModelNotFound, errors.NotFound)
    assert issubclass(errors.PluginCheckFailed, AssertionError)
    assert issubclass(errors.FeedbackRejected, errors.DataError)
    assert not issubclass(errors.FeedbackRejected, errors.ServingError)
