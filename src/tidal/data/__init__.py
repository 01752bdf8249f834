"""tidal.data: collect and check the data (the first stage of the loop).

It works on pandas DataFrames and returns bytes and dicts; the caller stores them (the data stage
never touches a store). The modules:

- ``sources``: read a table from a path, glob or URL (a plugin table; ``read_source``);
- ``snapshot``: freeze a table as canonical Parquet bytes with a content digest (``make_snapshot``);
- ``profile``: the statistics a monitor needs later without the data (``profile_frame``);
- ``schema``: column kinds and the schema later data is checked against (``infer_schema``);
- ``validate``: the anomalies of a table, alone or against a schema (``validate_frame``);
- ``roles``: the checks of the target and time columns that need the task or the spec (``check_time``).
"""

from tidal.data.profile import profile_frame
from tidal.data.schema import column_kind, infer_schema
from tidal.data.snapshot import canonical_parquet_bytes, make_snapshot, read_snapshot_bytes, snapshot_digest
from tidal.data.sources import read_source
from tidal.data.validate import Anomaly, raise_for_errors, validate_frame

__all__ = [
    "Anomaly",
    "canonical_parquet_bytes",
    "column_kind",
    "infer_schema",
    "make_snapshot",
    "profile_frame",
    "raise_for_errors",
    "read_snapshot_bytes",
    "read_source",
    "snapshot_digest",
    "validate_frame",
]
