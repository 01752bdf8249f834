"""Content digests: the identity of snapshots, artifacts, specs and cache keys."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal values always give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def digest_of(value: Any) -> str:
    """sha256 of the canonical JSON of ``value`` (dicts, lists, strings, numbers)."""
    return sha256_bytes(canonical_json(value).encode())


def short(digest: str, n: int = 12) -> str:
    """The first ``n`` hex characters of a digest, for display."""
    return digest[:n]
