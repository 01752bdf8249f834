"""Words for people: counts with their noun in the right number (``1 rejection``, ``2 rejections``)."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` with thousands separators and ``noun``, made plural unless ``n`` is 1 (``plural`` for nouns
    that do not just take an ``s``: ``count(2, "batch", "batches")``)."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


__all__ = ["count"]
