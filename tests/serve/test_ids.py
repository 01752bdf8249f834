"""Prediction ids: UUIDs, version 7 (time-ordered), unique, sorted by creation time; a request's ids are a
range under one prefix (tidal.core.ids)."""

from __future__ import annotations

import time
import uuid

import pytest

from tidal.core.ids import MAX_RANGE, IdRange, new_ids, split_id


def test_ids_are_time_ordered_uuid7() -> None:
    first = new_ids(3000)
    time.sleep(0.002)
    later = new_ids(5)
    assert isinstance(first, IdRange) and isinstance(later, IdRange)
    for pid in first[:50] + list(later):
        parsed = uuid.UUID(hex=pid)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and parsed.hex == pid
    assert len(set(first) | set(later)) == len(first) + len(later)
    assert max(first) < min(later)
    assert list(first) == sorted(first)  # in request order within a request
    assert abs(int(later[0][:12], 16) / 1000 - time.time()) < 5  # the first digits are the time in ms
    prefixes = {new_ids(1).prefix for _ in range(2000)}  # type: ignore[union-attr]
    assert len(prefixes) == 2000  # 58 random bits a prefix


def test_a_range_reads_as_its_ids() -> None:
    ids = IdRange("0" * 27 + "1", 3)
    assert ids.tolist() == ["0" * 27 + "10000", "0" * 27 + "10001", "0" * 27 + "10002"]
    assert ids[-1] == ids[2] == ids.tolist()[2] and ids[1:] == ids.tolist()[1:] and len(ids) == 3
    assert ids == ids.tolist() and ids == IdRange("0" * 27 + "1", 3) and ids != IdRange("0" * 27 + "1", 2)
    with pytest.raises(IndexError):
        ids[3]
    with pytest.raises(ValueError, match="28 hex digits"):
        IdRange("abc", 1)
    with pytest.raises(ValueError, match="1 to 65536"):
        IdRange("0" * 28, MAX_RANGE + 1)


def test_split_id_takes_only_the_form_new_ids_writes() -> None:
    pid = new_ids(20)[17]
    assert split_id(pid) == (pid[:28], 17)
    for other in (pid[:28] + "001A", pid[:28] + "+011", pid[:28] + " 11 ", pid[:28] + "0_11", pid + "x", "p1", ""):
        assert split_id(other) is None, other


def test_more_rows_than_a_range_holds_get_an_id_prefix_each() -> None:
    ids = new_ids(MAX_RANGE + 1)
    assert isinstance(ids, list) and len(set(ids)) == MAX_RANGE + 1
    assert all(pid.endswith("0000") and uuid.UUID(hex=pid).version == 7 for pid in ids[:100])
