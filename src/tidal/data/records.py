"""JSON records (a list of objects, as an API or a stream gives them) as a table.

:func:`records_frame` gives what ``pandas.json_normalize(records)`` gives — nested objects flattened into
dotted columns (``{"sensor": {"site": "dock"}}`` becomes a column ``sensor.site``), lists kept as values, an
empty object dropped, and in each record the plain values first, then the flattened ones, as pandas orders
them — without its cost: pandas rebuilds every record through two dict comprehensions and a recursive call
per value, where a record with no nested object (most readings) is passed to the DataFrame as it is, and a
nested one is flattened in one pass. The sources read a JSON API page by page (:mod:`tidal.data.sources.http`)
and a stream entry by entry (:mod:`tidal.data.stream`); building one DataFrame of every record, rather than
one per page concatenated, also makes the columns' types independent of where the pages break.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

SEP = "."


def flatten_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its nested objects flattened (``json_normalize``'s keys and order); ``record`` itself,
    not a copy, when it nests none."""
    # the types of the values, a handful, checked once each (isinstance per value costs a Python step each)
    if not any(issubclass(t, dict) for t in set(map(type, record.values()))):
        return record
    out = {k: v for k, v in record.items() if not isinstance(v, dict)}
    for key, value in record.items():
        if isinstance(value, dict):
            _into(out, key, value)
    return out


def _into(out: dict[str, Any], prefix: str, nested: dict[str, Any]) -> None:
    for key, value in nested.items():
        # under an empty prefix ({"": {"a": 1}}) json_normalize names the key alone ("a", not ".a")
        name = f"{prefix}{SEP}{key}" if prefix else f"{key}"
        if isinstance(value, dict):
            _into(out, name, value)
        else:
            out[name] = value


def flatten_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every record flattened (:func:`flatten_record`)."""
    return [flatten_record(r) for r in records]


def records_frame(records: list[dict[str, Any]], *, flat: bool = False) -> pd.DataFrame:
    """The DataFrame ``pandas.json_normalize(records)`` gives (an empty one for no records); ``flat``: the
    records are flattened already."""
    if not records:
        return pd.DataFrame()
    return pd.DataFrame(records if flat else flatten_records(records))


def field_names(records: list[dict[str, Any]]) -> set[str]:
    """The keys that any of ``records`` (flattened) has: the columns their frame would have."""
    names: set[str] = set()
    for record in records:
        names.update(record)
    return names


__all__ = ["field_names", "flatten_record", "flatten_records", "records_frame"]
