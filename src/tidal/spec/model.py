"""The shape of tidal.yaml as pydantic models: every section, key, default and allowed value.

Every model forbids unknown keys and is frozen. A key written with no value (``drop:``) or ``null``
means "the default" wherever the key has a default and ``null`` is not itself a meaningful value.
Each field's ``description`` is what error messages say is expected, so keep it a short noun phrase.
docs/spec.md documents the same keys for users; a test keeps the two in step.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from tidal.core.durations import DURATION_HINT, parse_duration
from tidal.core.hashing import digest_of
from tidal.spec.alerts import AlertSpec
from tidal.spec.collect import CollectSpec, IncrementalSpec
from tidal.spec.errors import spec_problem
from tidal.spec.gates import Gate, gate_from_yaml
from tidal.spec.metrics import Task, metrics_for, task_of
from tidal.spec.policy import BacktestSpec, RetrainSpec, RollbackSpec, StrategySpec, WindowSpec, strategy_from_yaml
from tidal.spec.search import SearchSpec
from tidal.spec.section import Metric, NonEmpty, Section
from tidal.spec.source import RedisStreamSpec, SourceSpec

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
ESTIMATOR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"


GateItem = Annotated[Gate, BeforeValidator(gate_from_yaml)]
Policy = Literal["warn", "error"]


# -- data ---------------------------------------------------------------------------------------------


Size = Annotated[list[Annotated[int, Field(ge=1, le=65_535)]], Field(min_length=2, max_length=2)]


class ImageChecksSpec(Section):
    """What an image must be to be used, and what happens to one that is not (tidal.data.images)."""

    size: Size | None = Field(None, description="[width, height] in pixels every image must have, or null (any)")
    channels: Literal[1, 2, 3, 4] | None = Field(
        None, description="1 (grey), 2 (grey and alpha), 3 (RGB), 4 (RGBA), or null (any)")
    on_error: Literal["skip", "refuse"] = Field(
        "refuse", description="skip (leave the image out, and say so) or refuse (the whole snapshot)")
    max_pixels: int = Field(40_000_000, ge=1, description="a whole number: the most pixels an image may have "
                                                          "(larger: a decompression bomb, refused or skipped)")
    classes: Policy = Field("warn", description="warn or error: a class that is new or gone since the reference")


class ChecksSpec(Section):
    """How strictly a new data snapshot is compared with the training data."""

    range_tolerance: float = Field(
        0.5, ge=0, allow_inf_nan=False,
        description="a number >= 0 (how far outside the training range a value may fall, "
                    "as a share of that range)",
    )
    null_share_jump: float = Field(
        0.1, ge=0, le=1, description="a number between 0 and 1 (the rise in a column's share of nulls "
                                     "that is reported)",
    )
    unseen_category: Policy = Field("warn", description="warn or error")
    range: Policy = Field("warn", description="warn or error")
    images: ImageChecksSpec = Field(
        default_factory=ImageChecksSpec,
        description="an images: section (size, channels, on_error, max_pixels, classes)")


class ImagesSpec(Section):
    """Where a table's images are, when they are not class folders (tidal.data.images)."""

    column: NonEmpty = Field("image", description="the name of the column of images")
    labels: NonEmpty | None = Field(
        None, description="a CSV or Parquet file of labels (a file name column and the target), or null")
    file_column: NonEmpty = Field("file", description="the labels file's column of image file names")


class DataSpec(Section):
    """Where the data is and what its columns mean."""

    source: SourceSpec = Field(description="where the data is: a file path, a glob or a URI, or a mapping "
                                           "{http: URL, ...} (a JSON API) or {redis: URL, stream: KEY, ...} (a "
                                           "sensor stream)")
    query: NonEmpty | None = Field(None, description="an SQL query (for SQL URL sources), or null")
    target: NonEmpty = Field(description="the name of the column to predict")
    time: NonEmpty | None = Field(
        None, description="the name of the time column, or null (file order is time order)"
    )
    time_order: Literal["any", "sorted"] = Field(
        "any", description="any (tidal sorts the rows by data.time) or sorted (the source is in time order "
                           "already: a row out of order is refused)",
    )
    id: NonEmpty | None = Field(None, description="the name of the row id column, or null")
    features: list[NonEmpty] | None = Field(
        None, description="a list of feature column names, or null (every column but target, time and id)"
    )
    drop: list[NonEmpty] = Field(default_factory=list, description="a list of column names to leave out")
    checks: ChecksSpec = Field(
        default_factory=ChecksSpec,
        description="a checks: section (range_tolerance, null_share_jump, unseen_category, range, images)",
    )
    images: ImagesSpec | None = Field(
        None, description="an images: section (column, labels, file_column), or null (class folders, or no images)")
    incremental: IncrementalSpec | None = Field(
        None, description="an incremental: section (column, key, lookback) for a SQL source, or null (read it all)")
    window: WindowSpec = Field(default_factory=WindowSpec,
                               description="all, or a section (last_rows, last_days): the rows a run trains on")
    collect: CollectSpec | None = Field(
        None, description="a duration (10m), a cron expression, or a collect: section (every or cron): how often "
                          "`tidal loop` collects from the source; or null (the loop never collects)")

    @model_validator(mode="after")
    def _columns_agree(self) -> DataSpec:
        if isinstance(self.source, RedisStreamSpec):
            for key, why in (("incremental", "a stream is collected in micro-batches by itself"),
                             ("query", "a query is only for SQL sources")):
                if getattr(self, key) is not None:
                    raise spec_problem("stream_source", f"data.{key} was given, but data.source is a stream: {why}",
                                       hint=f"remove data.{key}", at=(key,))
        if self.window.last_days is not None and self.time is None and self.incremental is None:
            raise spec_problem("window_without_time", "last_days needs a time column; data.time is null",
                               hint="name the time column in data.time (or data.incremental.column), or use "
                                    "window: {last_rows: N}", at=("window", "last_days"))
        for key in ("column", "key"):
            if self.incremental is not None and getattr(self.incremental, key) == self.target:
                raise spec_problem("column_conflict", f"{self.target!r} is also the target; expected a different "
                                   "column", hint=f"the incremental {key} cannot be the column to predict",
                                   at=("incremental", key))
        if self.time_order == "sorted" and self.time is None:
            raise spec_problem("time_order_without_time", "'sorted' needs a time column; data.time is null",
                               hint="name the time column in data.time, or remove time_order (with data.time: null "
                                    "the file order is the time order)", at=("time_order",))
        for key in ("time", "id"):
            if getattr(self, key) == self.target:
                raise spec_problem("column_conflict",
                                   f"{self.target!r} is also the target; expected a different column",
                                   hint=f"the {key} column cannot be the column to predict", at=(key,))
        for key in ("features", "drop"):
            columns = getattr(self, key) or []
            for i, column in enumerate(columns):
                if column == self.target:
                    raise spec_problem(
                        "column_conflict", f"{column!r} is the target; expected other columns only",
                        hint=f"remove {column!r} from {key}", at=(key, i),
                    )
                if column in columns[:i]:
                    raise spec_problem("duplicate", f"{column!r} is listed twice",
                                       hint="remove one of them", at=(key, i))
        return self


# -- prepare ------------------------------------------------------------------------------------------


class ImputeSpec(Section):
    """How missing values are filled, per column type (fitted on training data only)."""

    numeric: Literal["median", "mean", "most_frequent", "zero", "none"] = Field(
        "median", description="median, mean, most_frequent, zero or none"
    )
    categorical: Literal["most_frequent", "constant", "none"] = Field(
        "most_frequent", description="most_frequent, constant or none"
    )


class LabelFeaturesSpec(Section):
    """Inputs built from the labels the loop already knows when a row is predicted (see
    :mod:`tidal.data.history`): the last known labels, and their share (mean for a regressor) over windows."""

    lags: list[Annotated[int, Field(ge=1, le=10_000)]] = Field(
        default_factory=lambda: [1], description="a list of whole numbers >= 1: label_lag_K is the K-th newest "
                                                 "known label")
    windows: list[Annotated[int, Field(ge=2, le=100_000)]] = Field(
        default_factory=list, description="a list of whole numbers >= 2: the share of each class (a regressor: the "
                                          "mean) over the newest N known labels")
    relative: bool = Field(
        False, description="true or false: a regressor learns the change from label_lag_1 instead of the label "
                           "(its prediction is label_lag_1 + the model's output), so it can follow a trend")

    @model_validator(mode="after")
    def _some(self) -> LabelFeaturesSpec:
        if not self.lags and not self.windows:
            raise ValueError("label_features needs lags or windows (or remove the section)")
        if self.relative and 1 not in self.lags:
            raise spec_problem("relative_without_lag_1", "true predicts label_lag_1 + "
                               "the model's output, but lags does not list 1",
                               hint="add 1 to label_features.lags, or remove relative: true", at=("relative",))
        return self


class AugmentSpec(Section):
    """Training-time changes to the images (fit only, seeded by model.seed; never at prediction)."""

    flip: bool = Field(False, description="true or false: mirror half of the images left to right")
    rotate: float = Field(0.0, ge=0, le=45, description="a number of degrees from 0 to 45: the largest rotation")
    crop: int = Field(0, ge=0, le=64, description="a whole number of pixels from 0 to 64: the largest shift of a "
                                                  "random crop (the image is padded by it and cropped back)")


class ImagePrepareSpec(Section):
    """How images become a model's numbers (tidal.data.images.prepare), fitted on the training split only."""

    size: Size | None = Field(None, description="[width, height] to resize to, or null (the most common size in "
                                                "the training images)")
    color: Literal["auto", "grey", "rgb"] = Field(
        "auto", description="auto (grey when every training image is grey, else rgb), grey or rgb")
    scale: bool = Field(True, description="true or false: divide by 255, so pixels lie in [0, 1]")
    normalize: bool = Field(True, description="true or false: subtract the training images' channel means and "
                                              "divide by their standard deviations")
    augment: AugmentSpec | None = Field(None, description="an augment: section (flip, rotate, crop), or null")


class PrepareSpec(Section):
    """The preprocessing that is fitted with the model and travels inside it."""

    impute: ImputeSpec = Field(
        default_factory=ImputeSpec, description="an impute: section (numeric, categorical)"
    )
    scale: Literal["standard", "minmax", "none"] = Field("standard", description="standard, minmax or none")
    encode: Literal["onehot", "ordinal"] = Field("onehot", description="onehot or ordinal")
    label_features: LabelFeaturesSpec | None = Field(
        None, description="a label_features: section (lags, windows): inputs built from the labels already known"
    )
    images: ImagePrepareSpec | None = Field(
        None, description="an images: section (size, color, scale, normalize, augment), or null (the defaults)")


# -- model --------------------------------------------------------------------------------------------


class ModelSpec(Section):
    """The estimator to train. Only the shape of its path is checked here; the trainer imports it."""

    estimator: str = Field(
        pattern=ESTIMATOR_PATTERN,
        description="a dotted import path to an estimator class, like "
                    "sklearn.ensemble.HistGradientBoostingClassifier",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="a mapping of the estimator's parameters"
    )
    seed: int | None = Field(0, description="a whole number, or null for no fixed seed")
    task: Task | None = Field(None, description="classification, regression or null (decided from the data)")
    search: SearchSpec | None = Field(
        None, description="a search: section (params, trials or time, metric, sampler, pruner), or null (no search)")


# -- validate -----------------------------------------------------------------------------------------


class SplitSpec(Section):
    """How the held-out test rows are chosen (before anything is fitted)."""

    method: Literal["time", "random"] = Field("time", description="time or random")
    test_size: float = Field(0.2, gt=0, lt=1, description="a number between 0 and 1 (exclusive)")


class ValidateSpec(Section):
    """What is measured on the held-out rows, and what a model must reach to be promoted."""

    split: SplitSpec = Field(default_factory=SplitSpec, description="a split: section (method, test_size)")
    metrics: list[Metric] = Field(
        default_factory=list, description="a list of metric names (empty: the task's defaults)"
    )
    gates: list[GateItem] = Field(
        default_factory=list, description="a list of gates, like 'accuracy >= 0.70'"
    )

    @model_validator(mode="after")
    def _no_repeats(self) -> ValidateSpec:
        for i, name in enumerate(self.metrics):
            if name in self.metrics[:i]:
                raise spec_problem("duplicate", f"{name!r} is listed twice", hint="remove one of them",
                                   at=("metrics", i))
        return self

    def metric_names(self) -> list[str]:
        """The metrics listed, then those only the gates name, each once, in order."""
        names = list(self.metrics)
        for gate in self.gates:
            if gate.metric not in names:
                names.append(gate.metric)
        return names


# -- deploy and storage -------------------------------------------------------------------------------


class TimeoutsSpec(Section):
    """How long the server waits for a client before it closes the connection (docs/deploy.md)."""

    header_s: float = Field(
        10.0, gt=0, le=3600,
        description="seconds a client has to send a request's headers, from opening the connection (or from the "
                    "first byte of the next request on a kept-alive one)",
    )
    body_s: float = Field(
        30.0, gt=0, le=3600, description="seconds a client has to send a request's whole body, from its headers"
    )
    keep_alive_s: float = Field(
        5.0, gt=0, le=3600, description="seconds an idle connection is kept open after an answer"
    )


class DeploySpec(Section):
    """What happens to a model that passes its gates, and how the server runs."""

    auto_promote: bool = Field(True, description="true or false")
    host: NonEmpty = Field("127.0.0.1", description="the address tidal serve listens on")
    port: int = Field(8000, ge=0, le=65535, description="a port number (0 = any free port)")
    workers: int = Field(1, ge=1, le=64, description="a number of server processes between 1 and 64")
    max_request_bytes: int = Field(
        1_048_576, ge=1024, description="the largest request body accepted, in bytes (at least 1024)"
    )
    max_rows: int = Field(10_000, ge=1, description="the most instances one /predict request may carry")
    reload_seconds: float = Field(
        1.0, gt=0, le=3600, description="how often the server checks whether the champion moved, in seconds"
    )
    timeouts: TimeoutsSpec = Field(
        default_factory=TimeoutsSpec, description="a timeouts: section (header_s, body_s, keep_alive_s)"
    )
    max_connections: int = Field(
        1000, ge=1, le=1_000_000, description="the most open connections per server process (at least 1)"
    )
    feedback: Literal["reject", "overwrite"] = Field(
        "reject", description="reject or overwrite: what a second label for the same prediction does"
    )
    strategy: Annotated[StrategySpec, BeforeValidator(strategy_from_yaml)] = Field(
        default_factory=StrategySpec, description="direct, canary, shadow, or {canary: {percent, min_requests}}"
    )
    rollback: RollbackSpec | None = Field(
        None, description="a rollback: section (metric, drop, after_rows), or null for no automatic rollback"
    )
    runtime: Literal["native", "onnx"] = Field(
        "native", description="native (the model's own library) or onnx (its ONNX form, run by onnxruntime)"
    )
    onnx_tolerance: float = Field(
        1e-5, ge=0, description="the largest holdout difference accepted from the ONNX form (runtime: onnx)"
    )
    auth: list[Literal["predict", "feedback"]] = Field(
        default_factory=list, description="the endpoints that need a token with that scope: a list of predict "
                                          "and feedback (tidal tokens create --scope predict)"
    )


# -- monitor ----------------------------------------------------------------------------------------


class DriftSpec(Section):
    """How drift is tested per feature and when the dataset counts as drifted."""

    method: Literal["auto", "psi", "ks", "wasserstein", "chisquare", "jensenshannon"] = Field(
        "auto", description="auto, psi, ks, wasserstein, chisquare or jensenshannon"
    )
    threshold: float | None = Field(
        None, gt=0, description="a positive number overriding the test's default threshold, or null"
    )
    share: float = Field(0.5, gt=0, le=1, description="a share of drifted features in (0, 1]")
    columns: list[NonEmpty] | None = Field(None, description="the features to test, or null for all")


class PerformanceSpec(Section):
    """Performance on labelled feedback, and the floor under which it alerts."""

    metric: Metric | None = Field(None, description="a metric name, or null for the spec's first metric")
    floor: float | None = Field(None, description="a number: alert when the metric is worse, or null")
    min_labelled: int = Field(30, ge=1, description="the fewest labelled rows to report performance on")


class MonitorSpec(Section):
    """What `tidal monitor` looks at."""

    window: int = Field(1000, ge=10, description="the number of most recent predictions in a window (>= 10)")
    drift: DriftSpec = Field(default_factory=DriftSpec, description="a drift: section (method, threshold, share)")
    performance: PerformanceSpec = Field(
        default_factory=PerformanceSpec, description="a performance: section (metric, floor, min_labelled)"
    )
    retention: NonEmpty | None = Field(
        None, description="how long predictions stay in the prediction log before `tidal loop` archives them to "
                          "Parquet in the artifact store: a duration such as 90d or 12h, or null (kept in the log)")
    alerts: list[AlertSpec] = Field(default_factory=list, description="webhooks the loop posts alerts to (drift, "
                                    "performance, retrain_failed, rollback, ...): a list of alert: sections")

    @field_validator("retention", mode="before")
    @classmethod
    def _retention_is_a_duration(cls, value: Any) -> Any:
        hint = f"write {DURATION_HINT}, or null to keep every prediction in the log"
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise spec_problem("retention", f"{value} has no unit", hint=hint)
        if isinstance(value, str) and value.strip():
            try:
                parse_duration(value)
            except ValueError as exc:
                raise spec_problem("retention", str(exc), hint=hint) from None
        return value

    @property
    def retention_period(self) -> timedelta | None:
        """``retention`` as a timedelta (None: no retention)."""
        return None if self.retention is None else parse_duration(self.retention)


class StorageSpec(Section):
    """Where the workspace keeps metadata and artifacts, and how steps run (environment overrides it)."""

    store: NonEmpty | None = Field(
        None, description="a metadata store URL (sqlite:///... or postgresql://...), or null for the default"
    )
    predictions: NonEmpty | None = Field(
        None, description="a prediction log URL (sqlite:///... or postgresql://...), or null for the default"
    )
    artifacts: NonEmpty | None = Field(
        None, description="an artifact folder or fsspec URL (s3://...), or null for the default"
    )
    executor: NonEmpty | None = Field(
        None, description="local, ray (a local Ray started on demand), ray://host:port (a Ray cluster), or null "
                          "for the default"
    )


# -- the whole file -----------------------------------------------------------------------------------

with warnings.catch_warnings():
    # the `validate` key shadows BaseModel.validate, a deprecated pydantic v1 class method; on an
    # instance the field wins, which is what we want
    warnings.filterwarnings("ignore", message='Field name "validate"', category=UserWarning)

    class Spec(Section):
        """A validated tidal.yaml. ``digest`` identifies it: formatting and comments do not change it."""

        version: Literal[1] = Field(1, description="1 (the schema version)")
        name: str = Field(
            pattern=NAME_PATTERN,
            description="a project name: a letter, then up to 63 letters, digits, '_', '.' or '-'",
        )
        data: DataSpec = Field(description="a data: section with at least source and target")
        prepare: PrepareSpec = Field(
            default_factory=PrepareSpec, description="a prepare: section (impute, scale, encode)"
        )
        model: ModelSpec = Field(description="a model: section with at least estimator")
        # BaseModel.validate is a class method; the YAML key must keep its name (see the warning above)
        validate: ValidateSpec = Field(  # type: ignore[assignment]
            default_factory=ValidateSpec, description="a validate: section (split, metrics, gates)"
        )
        deploy: DeploySpec = Field(default_factory=DeploySpec, description="a deploy: section")
        storage: StorageSpec = Field(
            default_factory=StorageSpec, description="a storage: section (store, artifacts, executor)"
        )
        monitor: MonitorSpec = Field(
            default_factory=MonitorSpec, description="a monitor: section (window, drift, performance, retention)"
        )
        retrain: RetrainSpec = Field(
            default_factory=RetrainSpec, description="a retrain: section (on, cooldown, max_per_day, window, ...)"
        )
        backtest: BacktestSpec = Field(
            default_factory=BacktestSpec, description="a backtest: section (initial_rows, label_delay, ...)"
        )

        @model_validator(mode="after")
        def _one_task(self) -> Spec:
            named = [(("metrics", i), m) for i, m in enumerate(self.validate.metrics)]
            named += [(("gates", i), g.metric) for i, g in enumerate(self.validate.gates)]
            task = self.model.task
            first: tuple[str, str] | None = None
            for (key, i), metric in named:
                at = ("validate", key, i)
                if task is not None and task_of(metric) != task:
                    raise spec_problem(
                        "task_mismatch",
                        f"{metric!r} is a {task_of(metric)} metric, but model.task is {task}; "
                        f"expected one of {', '.join(metrics_for(task))}",
                        hint="change the metric, or model.task", at=at,
                    )
                if first is None:
                    first = (f"validate.{key}[{i}]", metric)
                elif task_of(metric) != task_of(first[1]):
                    raise spec_problem(
                        "task_mismatch",
                        f"{metric!r} is a {task_of(metric)} metric, but {first[1]!r} ({first[0]}) is a "
                        f"{task_of(first[1])} metric; expected metrics of one task",
                        hint="remove the metrics of the other task", at=at,
                    )
            return self

        @model_validator(mode="after")
        def _relative_target(self) -> Spec:
            lf = self.prepare.label_features
            if lf is None or not lf.relative:
                return self
            at = ("prepare", "label_features", "relative")
            if self.metric_task() == "classification":
                raise spec_problem("relative_classifier", "true is for regression (the "
                                   "change from the last label), but this project is a classification",
                                   hint="remove relative: true", at=at)
            if self.retrain.mode == "incremental":
                raise spec_problem("relative_incremental", "true cannot be continued "
                                   "by retrain.mode: incremental", hint="use retrain.mode: refit, or remove "
                                   "relative: true", at=at)
            if self.deploy.runtime == "onnx":
                raise spec_problem("relative_onnx", "true has no ONNX form "
                                   "(deploy.runtime: onnx)", hint="use deploy.runtime: native, or remove "
                                   "relative: true", at=at)
            return self

        @model_validator(mode="after")
        def _tune_needs_search(self) -> Spec:
            if self.retrain.tune is not None and self.model.search is None:
                raise spec_problem("tune_without_search", "retrain.tune needs a model.search to re-tune with",
                                   hint="add a model.search section, or remove retrain.tune", at=("retrain", "tune"))
            return self

        @model_validator(mode="after")
        def _collected_rows_train(self) -> Spec:
            if self.data.collect is not None and not self.retrain.include_source:
                raise spec_problem("collect_without_source", "data.collect collects rows from the source, but "
                                   "retrain.include_source is false, so a retrain would never train on them",
                                   hint="set retrain.include_source: true, or remove data.collect",
                                   at=("data", "collect"))
            if self.data.collect is not None and self.retrain.mode == "incremental":
                raise spec_problem("collect_incremental_mode", "data.collect collects rows from the source, but "
                                   "retrain.mode is incremental, which learns only the labelled predictions",
                                   hint="use retrain.mode: refit with data.collect, or remove data.collect",
                                   at=("data", "collect"))
            return self

        @property
        def digest(self) -> str:
            """sha256 of the canonical JSON of the validated spec (defaults included, comments not)."""
            return digest_of(self.model_dump(mode="json"))

        def metric_task(self) -> Task | None:
            """``model.task``, or the task the listed metrics and gates imply, or ``None``."""
            if self.model.task is not None:
                return self.model.task
            names = self.validate.metric_names()
            return task_of(names[0]) if names else None


__all__ = [
    "AugmentSpec",
    "ChecksSpec",
    "DataSpec",
    "DeploySpec",
    "ImageChecksSpec",
    "ImagePrepareSpec",
    "ImagesSpec",
    "ImputeSpec",
    "ModelSpec",
    "PrepareSpec",
    "Spec",
    "SplitSpec",
    "StorageSpec",
    "TimeoutsSpec",
    "ValidateSpec",
]
