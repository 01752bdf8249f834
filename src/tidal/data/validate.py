"""Validation: find what is wrong with a table before a model is trained on it.

``validate_frame(df, schema, target=...)`` returns a list of ``Anomaly`` (errors and warnings), never
raises for bad data; ``raise_for_errors`` turns the errors into one ``SchemaError`` with every
violation listed. Without a schema (the first snapshot) only the table-level checks run: an empty
table, the target (missing, all null, constant), duplicate column names, and columns that are numbers
except for a few text values (a typo that makes pandas read the whole column as text). Against the
schema of an earlier snapshot (``infer_schema``) it also reports missing columns (error), new columns
(warning), changed kinds (error), unseen categories and values far out of the seen range (warnings, or
errors by the spec's ``data.checks``) and a jump in the share of nulls (warning). ``kind_changes`` does the
kind comparison alone, against a model's signature instead of a schema.

Anomaly kinds, for code that reacts to them: ``empty_table``, ``duplicate_columns``,
``missing_target``, ``target_all_null``, ``constant_target``, ``text_in_numeric``, ``missing_column``,
``new_column``, ``kind_changed``, ``unseen_categories``, ``out_of_range``, ``null_share``.

Row numbers in messages are 0-based positions in the table (row 0 is the first data row).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from tidal.core.errors import SchemaError
from tidal.data.schema import NUMBER_KINDS, as_float, category_counts, column_kind
from tidal.spec.model import ChecksSpec

Severity = Literal["error", "warning"]
Policy = Literal["warn", "error"]


@dataclass(frozen=True)
class Anomaly:
    """One problem found in a table: ``severity`` "error" (the data is refused) or "warning"."""

    severity: Severity
    kind: str
    column: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}"


#: A text column whose values are numbers for more than this share is reported as a numeric column with
#: bad values (a typo that made pandas read the whole column as text).
NUMERIC_TEXT_SHARE = 0.95
#: How many examples a message lists.
MAX_LISTED = 5


def validate_frame(
    df: pd.DataFrame,
    schema: Mapping[str, Any] | None,
    *,
    target: str,
    checks: ChecksSpec | None = None,
    text_columns: Iterable[str] = (),
) -> list[Anomaly]:
    """Every anomaly in ``df``, errors and warnings, table-level first and then column by column.

    ``schema`` is what ``infer_schema`` returned for an earlier snapshot, or None for the first one.
    ``checks`` is the spec's ``data.checks`` (its thresholds and severities; the defaults when None);
    ``text_columns`` are exempt from the "numbers with a few text values" check.
    """
    checks = checks or ChecksSpec()
    text = frozenset(text_columns)
    found: list[Anomaly] = []
    if df.shape[1] == 0 or len(df) == 0:
        what = "no columns" if df.shape[1] == 0 else "no rows"
        return [Anomaly("error", "empty_table", None, f"the table has {what}")]
    columns = [str(c) for c in df.columns]
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        listed = _listing([repr(d) for d in dupes])
        found.append(Anomaly("error", "duplicate_columns", None, f"duplicate column names: {listed}"))
        df = df.loc[:, ~df.columns.duplicated()]
    found += _check_target(df, target)

    known: Mapping[str, Any] = schema["columns"] if schema is not None else {}
    for name in df.columns:
        name = str(name)
        if name in known:
            found += _compare_column(name, df[name], known[name], checks)
        else:
            if schema is not None:
                message = f"column {name!r} is new (not in the schema)"
                found.append(Anomaly("warning", "new_column", name, message))
            found += _check_text_in_numbers(name, df[name], text)
    for name in known:
        if name not in df.columns and name != target:
            message = f"column {name!r} is missing (it is in the schema)"
            found.append(Anomaly("error", "missing_column", name, message))
    return found


def kind_changes(df: pd.DataFrame, kinds: Mapping[str, str]) -> list[Anomaly]:
    """``kind_changed`` errors for the columns of ``df`` whose kind is not the one ``kinds`` gives (a model's
    signature: column → kind), integer and numeric being one; columns that ``df`` lacks or that are all null
    are left out (the caller and the schema check report them)."""
    found: list[Anomaly] = []
    for name, old_kind in kinds.items():
        if name not in df.columns or df[name].isna().all():
            continue
        new_kind = column_kind(df[name])
        if new_kind != old_kind and not (old_kind in NUMBER_KINDS and new_kind in NUMBER_KINDS):
            found.append(Anomaly("error", "kind_changed", name, _kind_message(name, df[name], old_kind, new_kind)))
    return found


def errors_of(anomalies: Iterable[Anomaly]) -> list[Anomaly]:
    """The anomalies of severity "error"."""
    return [a for a in anomalies if a.severity == "error"]


def raise_for_errors(anomalies: Iterable[Anomaly]) -> None:
    """Raise one ``SchemaError`` listing every error (warnings pass); do nothing if there is none."""
    errors = errors_of(anomalies)
    if not errors:
        return
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise SchemaError(
        f"the data was refused: {errors[0].message}{more}",
        violations=[a.message for a in errors],
        hint="fix the data (or data.source) and run again",
    )


# -- table-level checks ---------------------------------------------------------------------------


def _check_target(df: pd.DataFrame, target: str) -> list[Anomaly]:
    if target not in df.columns:
        present = [str(c) for c in df.columns]
        message = f"target column {target!r} not found; columns present: {_names(present)}"
        near = nearest_name(target, present)
        if near:
            message += f" (did you mean {near!r}?)"
        return [Anomaly("error", "missing_target", target, message)]
    series = df[target]
    present_values = series.dropna()
    if len(present_values) == 0:
        message = f"target column {target!r} is empty (every value is null)"
        return [Anomaly("error", "target_all_null", target, message)]
    try:
        distinct = present_values.nunique()
    except TypeError:  # unhashable values
        distinct = present_values.astype(str).nunique()
    if distinct == 1:
        value = short_value(present_values.iloc[0])
        return [Anomaly("error", "constant_target", target,
                        f"target column {target!r} has the single value {value} in all {len(present_values)} "
                        "non-null rows: a model cannot learn from it; set data.target to the column to predict, "
                        "or collect rows with at least one other value")]
    return []


def nearest_name(name: str, candidates: list[str]) -> str | None:
    """The candidate that ``name`` most likely meant (same name in other case, or a close spelling)."""
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def _first_text(series: pd.Series) -> tuple[float, int, int | None, Any]:
    """For a text column: (share of non-null values that are numbers, how many are not, the position
    and value of the first that is not)."""
    notnull = series.notna().to_numpy()
    parsed = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = notnull & np.isnan(parsed)
    n_present = int(notnull.sum())
    n_bad = int(bad.sum())
    share = (n_present - n_bad) / n_present if n_present else 0.0
    if not n_bad:
        return share, 0, None, None
    position = int(np.argmax(bad))
    return share, n_bad, position, series.iloc[position]


def _is_text(series: pd.Series) -> bool:
    return column_kind(series) == "categorical" and not isinstance(series.dtype, pd.CategoricalDtype)


def _check_text_in_numbers(name: str, series: pd.Series, text_columns: frozenset[str]) -> list[Anomaly]:
    if name in text_columns or not _is_text(series):
        return []
    present = series.dropna()
    if len(present) == 0:
        return []
    # Cheap look at the first values first: most text columns are plainly text.
    head = pd.to_numeric(present.iloc[:1000], errors="coerce")
    if head.notna().mean() < 0.5:
        return []
    share, n_bad, position, value = _first_text(series)
    if n_bad == 0 or share <= NUMERIC_TEXT_SHARE:
        return []
    return [Anomaly(
        "error", "text_in_numeric", name,
        f"column {name!r} is numeric but {n_bad} value(s) are text (first bad value {short_value(value)} at row "
        f"{position}), so it was read as text; fix those values, or list the column as text in the spec",
    )]


# -- comparison with a stored schema --------------------------------------------------------------


def _compare_column(
    name: str, series: pd.Series, expected: Mapping[str, Any], checks: ChecksSpec
) -> list[Anomaly]:
    found: list[Anomaly] = []
    rows = len(series)
    nulls = int(series.isna().sum())
    old_kind = str(expected.get("kind"))
    new_kind: str = column_kind(series)
    if nulls == rows:
        new_kind = old_kind  # an all-null column fits any kind; the null-share check reports it
    if new_kind != old_kind and not (old_kind in NUMBER_KINDS and new_kind in NUMBER_KINDS):
        found.append(Anomaly("error", "kind_changed", name, _kind_message(name, series, old_kind, new_kind)))
    elif new_kind in NUMBER_KINDS and nulls < rows:
        found += _check_range(name, series, expected, checks)
    elif new_kind in ("categorical", "boolean") and expected.get("categories") is not None:
        found += _check_categories(name, series, expected["categories"], checks)

    old_share = float(expected.get("null_share") or 0.0)
    new_share = nulls / rows if rows else 0.0
    if new_share - old_share > checks.null_share_jump:
        found.append(Anomaly(
            "warning", "null_share", name,
            f"column {name!r} is {new_share:.1%} null, was {old_share:.1%} "
            f"(+{(new_share - old_share) * 100:.1f} points)",
        ))
    return found


def _kind_message(name: str, series: pd.Series, old_kind: str, new_kind: str) -> str:
    # the models were trained on the old kind: the new data must hold it again, or the model do without it
    drop = "or leave the column out (data.drop)"
    if old_kind in NUMBER_KINDS and _is_text(series):
        _, n_bad, position, value = _first_text(series)
        if n_bad:
            return (f"column {name!r} was {old_kind}, now text "
                    f"(first bad value {short_value(value)} at row {position}; {n_bad} bad value(s)): "
                    f"fix those values in the source, {drop}")
        return f"column {name!r} was {old_kind}, now text (numbers stored as text): store them as numbers, {drop}"
    now = "text" if _is_text(series) else new_kind
    return (f"column {name!r} was {old_kind}, now {now}: the model was trained on {old_kind} values; fix the "
            f"column in the source, {drop}")


def _check_range(
    name: str, series: pd.Series, expected: Mapping[str, Any], checks: ChecksSpec
) -> list[Anomaly]:
    lo, hi = expected.get("min"), expected.get("max")
    if lo is None or hi is None:
        return []
    span = hi - lo
    band = checks.range_tolerance * (span if span > 0 else (abs(hi) or 1.0))
    low, high = lo - band, hi + band
    values = as_float(series)
    values = values[np.isfinite(values)]
    outside = values[(values < low) | (values > high)]
    if outside.size == 0:
        return []
    return [Anomaly(
        _severity(checks.range), "out_of_range", name,
        f"column {name!r} has {outside.size} value(s) outside [{low:.6g}, {high:.6g}] "
        f"(the seen range [{lo:.6g}, {hi:.6g}] widened by {checks.range_tolerance:.0%}): "
        f"min {values.min():.6g}, max {values.max():.6g}",
    )]


def _check_categories(name: str, series: pd.Series, seen: list[str], checks: ChecksSpec) -> list[Anomaly]:
    counts = category_counts(series)
    known = set(seen)
    unseen = [key for key in counts.sort_values(ascending=False, kind="stable").index if key not in known]
    if not unseen:
        return []
    return [Anomaly(
        _severity(checks.unseen_category), "unseen_categories", name,
        f"column {name!r} has {len(unseen)} categor{'y' if len(unseen) == 1 else 'ies'} not seen before: "
        f"{_listing([short_value(k) for k in unseen])}",
    )]


# -- message helpers ------------------------------------------------------------------------------


def _severity(policy: Policy) -> Severity:
    return "error" if policy == "error" else "warning"


def short_value(value: Any, limit: int = 30) -> str:
    """``value`` as its repr, cut to ``limit`` characters: short enough to quote in a one-line message."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _names(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


__all__ = [
    "Anomaly",
    "Policy",
    "Severity",
    "errors_of",
    "kind_changes",
    "nearest_name",
    "raise_for_errors",
    "short_value",
    "validate_frame",
]
