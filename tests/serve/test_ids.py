"""Prediction ids: UUIDs, version 7 (time-ordered), unique, sorted by creation time."""

from __future__ import annotations

import time
import uuid

from tidal.serve.service import new_ids


def test_ids_are_time_ordered_uuid7() -> None:
    first = new_ids(3000)
    time.sleep(0.002)
    later = new_ids(5)
    for pid in first[:50] + later:
        parsed = uuid.UUID(hex=pid)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and parsed.hex == pid
    assert len(set(first + later)) == len(first) + len(later)
    assert max(first) < min(later)
    assert first[:4096] == sorted(first[:4096])  # in request order within a request (12-bit sequence)
    assert abs(int(later[0][:12], 16) / 1000 - time.time()) < 5  # the prefix is the time in milliseconds
