"""The commented tidal.yaml that ``tidal init`` writes."""

from __future__ import annotations

import yaml

from tidal.spec.metrics import KNOWN_METRICS, Task

_ESTIMATORS: dict[Task, str] = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}

_TEMPLATE = """\
# tidal project file (schema version 1). Every key is documented in docs/spec.md.
version: 1
name: {name}

data:
  # where the data is: a file path, a glob (data/*.parquet) or a URI (s3://..., postgresql://...)
  source: {source}
  query: null               # an SQL query, for SQL URL sources only
  # the column to predict
  target: {target}
  time: null                # the time column; null = file order is time order
  time_order: any           # any (tidal sorts by time) | sorted (a row out of order is refused)
  id: null                  # a row id column, or null
  features: null            # null = every column but target, time and id
  drop: []                  # columns to leave out
  checks:                   # how a new snapshot is compared with the training data
    range_tolerance: 0.5    # a value may fall this share of the training range outside it
    null_share_jump: 0.1    # report a column whose share of nulls rises by more than this
    unseen_category: warn   # warn | error
    range: warn             # warn | error
    images: {{size: null, channels: null, on_error: refuse, max_pixels: 40000000, classes: warn}}
  images: null              # or {{labels: data/labels.csv}}, {{column: image}}: see docs/images.md
  incremental: null         # or {{column: updated_at, key: id, lookback: 1h}}: a SQL source's new rows only
  window: {{last_rows: null, last_days: null}}   # both null = train on all rows
  collect: null             # or 10m, "*/10 * * * *": `tidal loop` collects from the source on that schedule

prepare:                    # fitted on the training rows only; saved inside the model
  impute: {{numeric: median, categorical: most_frequent}}
  scale: standard           # standard | minmax | none
  encode: onehot            # onehot | ordinal
  label_features: null      # or {{lags: [1, 2], windows: [10]}}: the newest known labels as inputs
                            # (add relative: true for a regressor to learn the change from the last label)
  images: null              # or {{size: [28, 28], color: grey, augment: {{flip: true}}}}: for a column of images

model:
  estimator: {estimator}
  params: {{}}                # passed to the estimator, e.g. {{max_iter: 200}}
  seed: 0                   # null = no fixed seed
  # classification | regression | null (decided from the data)
  task: {task}
  # a hyper-parameter search (pip install 'tidal[search]'), e.g.
  # {{params: {{max_iter: {{int: [20, 200]}}}}, trials: 40}}: docs/spec.md
  search: null

validate:
  split: {{method: time, test_size: 0.2}}   # time | random
  # empty = the task's defaults; known: {metrics}
  metrics: []
  gates: []                 # a new model is promoted only if it passes every gate, e.g.
  #  - accuracy >= 0.70
  #  - roc_auc >= champion - 0.01
  #  - rmse <= champion * 1.05

deploy:
  auto_promote: true        # promote a model that passes its gates
  host: 127.0.0.1           # where `tidal serve` listens
  port: 8000
  workers: 1                # server processes; they share the prediction log
  max_request_bytes: 1048576  # larger bodies get a 413
  max_rows: 10000           # the most instances in one /predict request
  reload_seconds: 1.0       # how often the server checks whether the champion moved
  timeouts:                 # how long the server waits for a client (then 408, or closed)
    header_s: 10            # to send a request's headers
    body_s: 30              # to send a request's body, after its headers
    keep_alive_s: 5         # an idle connection stays open after an answer
  max_connections: 1000     # per server process; beyond it the longest idle one is closed
  feedback: reject          # reject | overwrite: a second label for the same prediction
  strategy:                 # direct | canary | shadow
    kind: direct
    percent: 10             # canary: share of traffic
    min_requests: 500       # canary/shadow: labelled answers before deciding
    patience: 5             # abandon a trial whose challenger gets no answers after 5x the traffic needed
  rollback: null            # e.g. {{metric: accuracy, drop: 0.03, after_rows: 1000}}
  runtime: native           # native | onnx: serve the champion's ONNX form with onnxruntime (pip install 'tidal[onnx]')
  onnx_tolerance: 1.0e-5    # runtime onnx: the largest holdout difference accepted from the ONNX form
  auth: []                  # e.g. [predict, feedback]: those endpoints need a token with that scope (docs/api.md)

retrain:                    # when `tidal loop` retrains (no trigger = never by itself)
  on:
    drift: null             # e.g. {{share: 0.5}}
    performance: null       # e.g. {{metric: accuracy, below: 0.70, or_drop: 0.05}}
    estimated_performance: null  # e.g. {{or_drop: 0.05}}: estimated before the labels arrive
    new_data: null          # e.g. {{rows: 5000}}
    growth: null            # e.g. 2: the training rows doubled since the champion's (retrain at x2, x4, ...)
    schedule: null          # e.g. "0 3 * * *"
  cooldown: {{rows: 2000, minutes: null}}
  max_per_day: 4
  window: {{last_rows: null, last_days: null}}   # both null = all rows
  min_labelled: 500
  include_source: true
  refit: true               # refit a challenger that passed on all rows, holdout included
  mode: refit               # refit | incremental (continue the champion by partial_fit: docs/spec.md)
  tune: null                # with model.search: 'every 5 retrains' searches again every 5th retrain

backtest:                   # `tidal backtest`
  initial_rows: 0.2         # share (< 1) or count of rows that train the first champion
  label_delay: 0            # rows until a label arrives (0: before the next row)
  periodic_every: null      # null = retrain.cooldown.rows
  tick_rows: 250
  minutes_per_row: 30.0
  max_rows: null
  online: null              # e.g. {{model: river.forest.ARFClassifier}}: a river learner as a baseline
  metric: null              # null = accuracy (classification) or rmse (regression)

monitor:                    # what `tidal monitor` compares
  window: 1000              # the most recent predictions
  drift:
    method: auto            # auto | psi | ks | wasserstein | chisquare | jensenshannon
    threshold: null         # null = the test's own calibrated threshold
    share: 0.5              # the dataset drifts when this share of features drifts
    columns: null           # null = every input
  performance:
    metric: null            # null = the first of validate.metrics
    floor: null             # alert below this
    min_labelled: 30        # the fewest labelled predictions to judge on
  retention: null           # e.g. 90d: older predictions move to Parquet in the artifact store
  alerts: []                # e.g. [{{webhook: ${{SLACK_WEBHOOK}}, on: [drift, retrain_failed, rollback]}}]

storage:                    # null = the default; TIDAL_STORE_URL, TIDAL_ARTIFACTS_URL, TIDAL_EXECUTOR win
  store: null               # default sqlite:///.tidal/tidal.db
  predictions: null         # the prediction log; default sqlite:///.tidal/predictions.db
  artifacts: null           # default .tidal/artifacts
  executor: null            # local; ray (a local Ray) or ray://host:port (a cluster): pip install tidal[ray]
"""


def _scalar(value: str) -> str:
    """``value`` as a YAML scalar, quoted only where YAML needs it."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True)
    return text.removesuffix("\n...\n").strip()


def default_spec_yaml(name: str, source: str, target: str, *, task: Task | None = None) -> str:
    """A commented tidal.yaml for a new project, with every key at its default.

    ``task`` picks the estimator (a classifier unless it is ``"regression"``) and fills ``model.task``.
    The text is validated before it is returned, so a bad name raises ``SpecError`` naming the key.
    """
    from tidal.spec.loading import parse_spec  # the template must parse; checked here, lazily

    text = _TEMPLATE.format(
        name=_scalar(name), source=_scalar(source), target=_scalar(target),
        estimator=_ESTIMATORS[task or "classification"], task=task or "null",
        metrics=", ".join(KNOWN_METRICS),
    )
    parse_spec(text)
    return text
