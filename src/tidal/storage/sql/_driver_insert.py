"""An INSERT for the hot path, executed at the driver level (``Connection.exec_driver_sql``).

SQLAlchemy's ``execute(insert, rows)`` spends several microseconds a row building each row's parameters
and running the type processors: at 1,000-row appends, more than SQLite's insert itself. This builds the
same values with the same processors (each column type's ``bind_processor`` for the dialect, so what is
stored is exactly what ``conn.execute(table.insert())`` would store: a contract test compares them), and
runs each processor once per distinct value: the rows of one append share their times and flags.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa


class DriverInsert:
    """``INSERT INTO table (columns) VALUES (...)`` in the dialect's parameter style, with a
    ``RETURNING`` of ``returning`` where asked (PostgreSQL; SQLite gives ``lastrowid``)."""

    def __init__(self, table: sa.Table, columns: Sequence[str], dialect: Any, *, returning: str | None = None) -> None:
        quote = dialect.identifier_preparer.quote
        #: the driver's parameter placeholder, for other statements written for the same driver
        self.mark = mark = "?" if dialect.paramstyle in ("qmark", "numeric") else "%s"
        self.columns = list(columns)
        self.sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in self.columns)}) "
                    f"VALUES ({', '.join([mark] * len(self.columns))})")
        if returning is not None:
            self.sql += f" RETURNING {quote(returning)}"
        self._processors = [(i, proc) for i, name in enumerate(self.columns)
                            if (proc := table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None]

    def params(self, rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """The driver's parameters for ``rows`` (values in the order of ``columns``)."""
        processors = self._processors
        if not processors:
            return [tuple(r) for r in rows]
        done: dict[tuple[int, Any], Any] = {}
        out: list[tuple[Any, ...]] = []
        for row in rows:
            values = list(row)
            for i, proc in processors:
                value = values[i]
                if value is not None:
                    key = (i, value)
                    stored = done.get(key, done)
                    if stored is done:
                        stored = done[key] = proc(value)
                    values[i] = stored
            out.append(tuple(values))
        return out


__all__ = ["DriverInsert"]
