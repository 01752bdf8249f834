"""Errors raised by tidal.

The tree (classes defined outside this module are named with their module)::

    TidalError                 every error tidal raises on purpose; the CLI prints it as one line, exit 2
    ├── SpecError              tidal.yaml is malformed, has an unknown key or a wrong value
    │   ├── SpecValidationError    every problem found in one tidal.yaml (tidal.spec.errors)
    │   └── GateSyntaxError        a validation gate's text cannot be read (tidal.spec.gates)
    ├── DataError              the data cannot be used
    │   ├── SourceError        a source cannot be read (missing file, bad URI, failed query)
    │   │   └── EmptySourceError   a source that holds no rows (tidal.data.sources.base)
    │   ├── SchemaError        a snapshot violates the stored schema (missing column, new category, ...)
    │   └── FeedbackRejected   a label for an unknown prediction, or a second label for one
    ├── TrainingError          the estimator could not be built or fitted
    ├── CannotConvert          a model, or a step of it, that no ONNX converter converts (tidal.train.onnx)
    ├── ParityError            an ONNX form that does not answer the holdout as its model does, within the
    │                          tolerance (tidal.train.onnx)
    ├── GateFailed             a model failed its validation gate (it is registered as rejected)
    ├── RegistryError          the model registry refused an operation
    │   ├── ModelNotFound      no such model, version or alias (also a NotFound)
    │   ├── AliasConflict      an alias move that would break an invariant
    │   │   └── AliasMoved     the alias moved since the caller looked (a concurrent promotion)
    │   └── IntegrityError     a stored artifact does not match its digest (tampered or corrupt)
    │       └── UntrustedModel a model file names code or types tidal never loads; refused before it is built
    ├── NotFound               nothing is stored under that id or name (also a LookupError)
    │   ├── RunNotFound        no such run, or a run id prefix that is too short or matches several
    │   ├── SnapshotNotFound   no snapshot with that digest
    │   ├── ReportNotFound     no such report, or a report id prefix that is too short or matches several
    │   ├── PredictionNotFound no prediction with that id in the prediction log
    │   ├── ArtifactNotFound   no artifact with that digest in the artifact store
    │   └── ModelNotFound      (also a RegistryError, above)
    ├── StorageError           a metadata store, prediction log or artifact store failed (could not answer)
    ├── ExecutorError          the executor could not run a step: a Ray cluster that cannot be reached, a task
    │                          whose worker died again after its one retry
    ├── ServingError           the server could not answer
    │   ├── ApiError           a request refused with an HTTP status; its message is the answer's body
    │   │                      (tidal.predict.errors; the SDK raises it too)
    │   └── ModelCheckFailed   a version that fails on its own sample rows; it never serves
    │                          (tidal.predict.predictor)
    ├── AuthError              the management API or the server refused a caller (tidal.ui, deploy.auth)
    │   ├── Unauthenticated    no token, an unknown, revoked, expired or malformed one, a forged session (401)
    │   └── Forbidden          a known caller whose role or scope does not allow the action (403)
    ├── PluginCheckFailed      a plugin broke its contract in a conformance check (also an AssertionError)
    │   ├── SourceCheckFailed      a source plugin (tidal.data.sources.checks)
    │   ├── FlavorCheckFailed      a model flavor plugin (tidal.train.flavors.checks)
    │   └── DriftTestCheckFailed   a drift test plugin (tidal.monitor.checks)
    └── PluginNotFound         an unknown plugin name (source, flavor, drift test); lists the known ones

    TidalWarning               (a UserWarning) a condition worth telling that does not stop the work

The rule: every exception class tidal defines is in this tree, and every warning class is a
``TidalWarning``. The only exceptions are internal control flow: a class raised and caught inside one
package that never escapes a public call (the prediction log's ``_RepeatedId`` and ``Unreadable``, the
server's ``ClientGone``); ``tests/unit/test_error_tree.py`` holds the list and checks every class under
``src/tidal`` against it.

``NotFound`` is a ``LookupError``, so code that catches Python's "not there" error catches it; it is not a
``KeyError``, which means a missing key of a mapping: ``except KeyError`` around a store call would also
hide a bug of that kind, where ``except NotFound`` catches only what the store did not find. ``NotFound``
is not a ``StorageError`` either: a store that answers "not there" has not failed, and what a caller does
about a failed store (the server answers 503, "try again") is wrong for it.

Adapters translate library errors at the boundary (``raise StorageError(...) from exc``) and add the
context a user needs: which file, which column, which step. Every message says what is wrong and, where
there is one, how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


class TidalError(Exception):
    """Base of every error tidal raises on purpose.

    ``hint`` is the fix, printed after the message (``message — hint``). What a command exits with is the
    CLI's business (``tidal.cli.exits``), not the error's.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled whole (message, hint and every field of a subclass), without calling __init__ again, whose
        # keyword-only arguments the default (``cls(*args)``) would lose: an error raised by a step on a Ray
        # worker reaches the driver as it was raised
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type[TidalError], args: tuple[Any, ...], state: dict[str, Any]) -> TidalError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class SpecError(TidalError):
    """tidal.yaml is malformed, or a key or value in it is wrong."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message, hint=hint)
        self.path = path


class DataError(TidalError):
    """The data cannot be used as it is."""


class SourceError(DataError):
    """A data source cannot be read."""


class SchemaError(DataError):
    """A snapshot violates the stored schema or quality rules.

    ``violations`` holds one human sentence per problem found, so that a run can report them all at once.
    """

    def __init__(self, message: str, *, violations: Sequence[str] = (), hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.violations = list(violations)


class FeedbackRejected(DataError):
    """A label that cannot be stored, raised by the prediction log (whoever sends the labels: the server,
    the SDK). ``reason`` is ``unknown`` (no such prediction id) or ``duplicate`` (it already has a label);
    ``index`` is the position of the offending item in a batch; ``prediction_id`` the id it names."""

    def __init__(self, message: str, *, reason: str, prediction_id: str, index: int = 0,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason
        self.prediction_id = prediction_id
        self.index = index


class TrainingError(TidalError):
    """The estimator could not be built or fitted."""


class GateFailed(TidalError):
    """A model failed its validation gate; ``reasons`` lists every failed condition."""

    def __init__(self, message: str, *, reasons: Sequence[str] = (), hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reasons = list(reasons)


class RegistryError(TidalError):
    """The model registry refused an operation."""


class NotFound(TidalError, LookupError):
    """Nothing is stored under the id or name asked for (a run, snapshot, report, prediction, artifact or
    model version). A ``LookupError``, not a ``StorageError``: the store answered, and the answer is "none"."""


class RunNotFound(NotFound):
    """No such run, or a run id prefix that is too short or matches several runs (the message says which)."""


class SnapshotNotFound(NotFound):
    """No snapshot with that digest."""


class ReportNotFound(NotFound):
    """No such monitoring report, or a report id prefix that is too short or matches several."""


class PredictionNotFound(NotFound):
    """No prediction with that id in the prediction log."""


class ArtifactNotFound(NotFound):
    """No artifact with that digest in the artifact store."""


class ModelNotFound(RegistryError, NotFound):
    """No such model, version or alias: a registry error, and a ``NotFound``."""


class AliasConflict(RegistryError):
    """An alias move that would break an invariant (e.g. pointing champion at a rejected version)."""


class AliasMoved(AliasConflict):
    """An alias move made on the condition that the alias still points where the caller last saw it (a
    champion gated against), refused because it has moved since: ``current`` is where it points now
    (None: nowhere)."""

    def __init__(self, message: str, *, current: int | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.current = current


class IntegrityError(RegistryError):
    """A stored artifact does not match its recorded digest."""


class UntrustedModel(IntegrityError):
    """A model file names functions, methods or types tidal never loads; ``refused`` lists them with why.

    Raised before anything from the file is built, so nothing it names has run.
    """

    def __init__(self, message: str, *, refused: Sequence[str] = (), hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.refused = list(refused)


class StorageError(TidalError):
    """A metadata or artifact store failed."""


class ExecutorError(TidalError):
    """The executor could not run a step (not the step failing): its cluster cannot be reached, or the worker
    running the step died twice (it is retried once)."""


class ServingError(TidalError):
    """The server could not answer a request."""


class AuthError(TidalError):
    """A caller the management API (or a ``deploy.auth`` endpoint) refuses. The message never holds the
    token or cookie it was given: it names the token by its id at most."""


class Unauthenticated(AuthError):
    """Who is calling is not known: no token, an unknown, revoked, expired or malformed one, or a session
    cookie that does not verify (HTTP 401)."""


class Forbidden(AuthError):
    """The caller is known, and its role or scope does not allow this action (HTTP 403)."""


class PluginCheckFailed(TidalError, AssertionError):
    """A plugin broke its contract in one of the conformance checks tidal offers plugin authors (e.g.
    ``check_source``); an ``AssertionError`` too, so that a test runner reports it as a failed test."""


class PluginNotFound(TidalError):
    """An unknown plugin name; the message lists the names that are known."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known_list = sorted(known)
        from difflib import get_close_matches

        close = get_close_matches(name, known_list, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known {kind}s: {', '.join(known_list)}"
        if close:
            hint += f" (known {kind}s: {', '.join(known_list)})"
        super().__init__(f"unknown {kind} {name!r}", hint=hint)
        self.kind = kind
        self.name = name
        self.known = known_list


__all__ = [
    "AliasConflict",
    "AliasMoved",
    "ArtifactNotFound",
    "AuthError",
    "DataError",
    "ExecutorError",
    "FeedbackRejected",
    "Forbidden",
    "GateFailed",
    "IntegrityError",
    "ModelNotFound",
    "NotFound",
    "PluginCheckFailed",
    "PluginNotFound",
    "PredictionNotFound",
    "RegistryError",
    "ReportNotFound",
    "RunNotFound",
    "SchemaError",
    "ServingError",
    "SnapshotNotFound",
    "SourceError",
    "SpecError",
    "StorageError",
    "TidalError",
    "TrainingError",
    "Unauthenticated",
    "UntrustedModel",
]


class TidalWarning(UserWarning):
    """A condition worth telling the user that does not stop the work (e.g. a data-quality warning)."""


__all__ += ["TidalWarning"]
