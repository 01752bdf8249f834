"""Prediction ids: time-ordered UUIDs (version 7, RFC 9562) as 32 lowercase hex digits, the ids of one
request numbered under one prefix.

Layout of an id: 48 bits of Unix milliseconds (12 digits), the version ``7``, 58 random bits (with the
variant's two bits, 15 digits): together the *prefix*, 28 digits, drawn once per request; then the row's
position in the request (4 digits). So the ids of a request of N rows are ``prefix + 0000`` up to
``prefix + hex(N - 1)``: an :class:`IdRange`, which a prediction log can store as one entry (the prefix
and N) instead of N (see :mod:`tidal.storage.predictions`), and which costs one random draw instead of N.
Ids made close in time sort together, so a log's index on them grows at its end; within a request they
sort in row order.

A request of more than :data:`MAX_RANGE` rows gets a prefix per row (position ``0000`` each): still
unique, time-ordered UUIDs, stored one by one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from typing import overload

#: Hex digits of a prefix, and of a position.
PREFIX_DIGITS = 28
POSITION_DIGITS = 4
#: The most ids one prefix numbers.
MAX_RANGE = 16**POSITION_DIGITS
_VARIANT = "89ab"


class IdRange(Sequence[str]):
    """The ``n`` ids ``prefix + 0000`` … ``prefix + hex(n - 1)`` (see the module docstring), as a
    read-only sequence of strings; :meth:`tolist` makes (once) the plain list, for JSON."""

    __slots__ = ("_list", "n", "prefix")

    def __init__(self, prefix: str, n: int) -> None:
        if len(prefix) != PREFIX_DIGITS:
            raise ValueError(f"an id prefix has {PREFIX_DIGITS} hex digits, not {len(prefix)}")
        if not 0 < n <= MAX_RANGE:
            raise ValueError(f"an id range holds 1 to {MAX_RANGE} ids, not {n}")
        self.prefix = prefix
        self.n = n
        self._list: list[str] | None = None

    def tolist(self) -> list[str]:
        """The ids as a list (made on the first call, then kept)."""
        if self._list is None:
            prefix = self.prefix
            self._list = [f"{prefix}{i:04x}" for i in range(self.n)]
        return self._list

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return self.tolist()[index]
        if index < 0:
            index += self.n
        if not 0 <= index < self.n:
            raise IndexError("id range index out of range")
        return f"{self.prefix}{index:04x}"

    def __iter__(self) -> Iterator[str]:
        return iter(self.tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IdRange):
            return (self.prefix, self.n) == (other.prefix, other.n)
        return isinstance(other, Sequence) and list(self) == list(other)

    def __hash__(self) -> int:
        return hash((self.prefix, self.n))

    def __repr__(self) -> str:
        return f"IdRange({self.prefix!r}, {self.n})"


def new_prefix() -> str:
    """A fresh prefix: the time in milliseconds, the version, 58 random bits with the variant."""
    stamp = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(8), "big")
    # rand_a: 12 bits; then the variant (binary 10) and 2 + 44 random bits
    return f"{stamp:012x}7{rand >> 52:03x}{_VARIANT[(rand >> 44) & 3]}{rand & ((1 << 44) - 1):011x}"


def new_ids(n: int) -> IdRange | list[str]:
    """``n`` new prediction ids for one request: an :class:`IdRange` under a fresh prefix, or (more than
    :data:`MAX_RANGE`) a list of ids with a prefix each."""
    if 0 < n <= MAX_RANGE:
        return IdRange(new_prefix(), n)
    return [new_prefix() + "0000" for _ in range(n)]


def split_id(prediction_id: str) -> tuple[str, int] | None:
    """``(prefix, position)`` of an id that may belong to an :class:`IdRange`, else None."""
    if len(prediction_id) != PREFIX_DIGITS + POSITION_DIGITS:
        return None
    digits = prediction_id[PREFIX_DIGITS:]
    try:
        position = int(digits, 16)
    except ValueError:
        return None
    # int() also takes signs, spaces, underscores and capitals: only the digits new_ids writes count
    return (prediction_id[:PREFIX_DIGITS], position) if f"{position:04x}" == digits else None


__all__ = ["MAX_RANGE", "PREFIX_DIGITS", "IdRange", "new_ids", "new_prefix", "split_id"]
