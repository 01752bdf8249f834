"""The step cache: a key that is never silently stale, and an explanation for every hit and miss.

Key = step name + step code version + params + input digests + environment. The parts are kept as a
fingerprint beside the cached outputs, so a miss can say exactly which part changed.
"""

from __future__ import annotations

import hashlib
import inspect
import platform
from collections.abc import Callable, Mapping
from functools import cache
from importlib import metadata
from typing import Any

from tidal.core.hashing import canonical_json, digest_of

ENV_PACKAGES = ("tidal", "numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "skops")


@cache
def environment() -> dict[str, str]:
    """The versions that can change a step's result."""
    env = {"python": platform.python_version()}
    for pkg in ENV_PACKAGES:
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            env[pkg] = "absent"
    return env


def environment_digest() -> str:
    return digest_of(environment())


def code_version(fn: Callable[..., Any]) -> str:
    """A digest of a step function's source: editing the step invalidates its cache."""
    try:
        src = inspect.getsource(fn)
    except (OSError, TypeError):
        src = f"{fn.__module__}.{getattr(fn, '__qualname__', repr(fn))}"
    return hashlib.sha256(src.encode()).hexdigest()[:16]


def cache_key(step: str, code: str, fingerprint: Mapping[str, Any]) -> str:
    return digest_of({"step": step, "code": code, "inputs": fingerprint, "env": environment()})


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: "{}"}
    return {prefix: value if isinstance(value, str) else canonical_json(value)}


def _show(text: str | None) -> str:
    if text is None:
        return "(absent)"
    return text if len(text) <= 40 else text[:16] + "…" + text[-8:]


def explain_miss(
    current: Mapping[str, Any], previous: Mapping[str, Any] | None, code: str, prev_code: str | None,
) -> str:
    """Why a step was not reused, compared with the last time it ran."""
    if previous is None:
        return "ran: no earlier run of this step"
    reasons: list[str] = []
    if prev_code is not None and prev_code != code:
        reasons.append("the step's code changed")
    now, before = _flatten(current.get("inputs", {})), _flatten(previous.get("inputs", {}))
    for key in sorted(set(now) | set(before)):
        if now.get(key) != before.get(key):
            reasons.append(f"{key}: {_show(before.get(key))} → {_show(now.get(key))}")
    env_now, env_before = current.get("env", {}), previous.get("env", {})
    for pkg in sorted(set(env_now) | set(env_before)):
        if env_now.get(pkg) != env_before.get(pkg):
            reasons.append(f"environment {pkg}: {env_before.get(pkg)} → {env_now.get(pkg)}")
    if not reasons:
        return "ran: the cached result is gone (its artifacts are missing)"
    shown = reasons[:4] + ([f"and {len(reasons) - 4} more"] if len(reasons) > 4 else [])
    return "ran: " + "; ".join(shown)
