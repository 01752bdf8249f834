"""The Elec2 example parses, and its digest follows the meaning of the file, not its formatting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import tidal.spec
from tidal.core.errors import SpecError
from tidal.core.hashing import digest_of
from tidal.spec import Gate, Spec, default_spec_yaml, load_spec, parse_spec
from tidal.spec.loading import _read_yaml

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "elec2" / "tidal.yaml"


@pytest.fixture
def text() -> str:
    return EXAMPLE.read_text()


def test_public_api_is_exactly_all() -> None:
    assert sorted(tidal.spec.__all__) == sorted(
        [
            "CLASSIFICATION_METRICS", "KNOWN_METRICS", "REGRESSION_METRICS", "ChecksSpec", "DataSpec",
            "DeploySpec", "DriftSpec", "Gate", "ImputeSpec", "ModelSpec", "MonitorSpec",
            "PerformanceSpec", "PrepareSpec", "Spec", "SpecIssue",
            "SpecValidationError", "SplitSpec", "StorageSpec", "ValidateSpec", "default_spec_yaml",
            "load_spec", "parse_spec",
        ]
    )
    for name in tidal.spec.__all__:
        assert hasattr(tidal.spec, name)


def test_example_parses_with_its_values() -> None:
    spec = load_spec(EXAMPLE)
    assert spec.version == 1
    assert spec.name == "elec2"
    assert spec.data.source == "data/elec2.csv.gz"
    assert spec.data.target == "up"
    assert spec.data.time is None and spec.data.features is None and spec.data.drop == []
    assert spec.prepare.impute.numeric == "median"
    assert spec.prepare.scale == "standard" and spec.prepare.encode == "onehot"
    assert spec.model.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert spec.model.params == {"max_iter": 200}
    assert spec.model.seed == 0 and spec.model.task is None
    assert spec.validate.split.method == "time" and spec.validate.split.test_size == 0.2
    assert spec.validate.metrics == ["accuracy", "roc_auc"]
    assert spec.validate.gates == [
        Gate(metric="accuracy", op=">=", kind="absolute", value=0.60),
        Gate(metric="accuracy", op=">=", kind="relative", value=-0.03),
    ]
    assert [str(g) for g in spec.validate.gates] == ["accuracy >= 0.60", "accuracy >= champion - 0.03"]
    assert spec.deploy.auto_promote is True
    assert spec.storage.store is None
    assert spec.monitor.window == 1000 and spec.monitor.drift.method == "auto"
    assert spec.retrain.on.drift is not None and spec.retrain.on.drift.share == 0.5
    assert spec.retrain.window.last_rows == 5_000 and spec.backtest.initial_rows == 0.2
    assert spec.retrain.cooldown.rows == 1_000 and spec.backtest.periodic_every is None
    assert spec.deploy.rollback is not None and spec.deploy.rollback.drop == 0.03
    assert spec.metric_task() == "classification"


def test_load_spec_accepts_the_project_folder() -> None:
    assert load_spec(EXAMPLE.parent) == load_spec(EXAMPLE)
    assert load_spec(str(EXAMPLE)) == load_spec(EXAMPLE)


def test_digest_is_sha256_of_the_canonical_dump(text: str) -> None:
    spec = parse_spec(text)
    assert spec.digest == digest_of(spec.model_dump(mode="json"))
    assert len(spec.digest) == 64


def test_digest_ignores_comments_whitespace_order_and_number_spelling(text: str) -> None:
    base = parse_spec(text).digest
    no_comments = "\n".join(line.split("#")[0].rstrip() for line in text.splitlines()) + "\n\n\n"
    assert parse_spec(no_comments).digest == base
    # block style, keys reordered, defaults written out, 0.70 spelled 0.7
    data = _read_yaml(text, "tidal.yaml")[0]  # YAML 1.2, as tidal reads it: `on` stays a key
    data["validate"]["gates"] = ["accuracy >= 0.6", "accuracy>=champion-0.03"]
    data["deploy"]["auto_promote"] = True
    reordered = dict(reversed(list(data.items())))
    rewritten = yaml.safe_dump(reordered, default_flow_style=False, sort_keys=False)
    assert parse_spec(rewritten).digest == base


def test_digest_changes_with_a_param(text: str) -> None:
    base = parse_spec(text).digest
    assert parse_spec(text.replace("max_iter: 200", "max_iter: 201")).digest != base
    assert parse_spec(text.replace("accuracy >= 0.60", "accuracy >= 0.61")).digest != base


def test_defaults_fill_missing_and_empty_sections() -> None:
    spec = parse_spec(
        "name: tiny\ndata: {source: d.csv, target: y}\nmodel: {estimator: sklearn.linear_model.Ridge}\n"
        "prepare:\nvalidate:\n  gates:\n  metrics: null\ndeploy: {}\n"
    )
    assert spec.prepare.scale == "standard"
    assert spec.validate.gates == [] and spec.validate.metrics == []
    assert spec.data.checks.range_tolerance == 0.5 and spec.data.checks.null_share_jump == 0.1
    assert spec.data.checks.unseen_category == "warn" and spec.data.checks.range == "warn"
    assert spec.validate.split.test_size == 0.2
    assert spec.deploy.auto_promote is True
    assert spec.model.seed == 0
    assert parse_spec(
        "name: tiny\ndata: {source: d.csv, target: y}\nmodel: {estimator: a.B, seed: null}\n"
    ).model.seed is None


def test_yaml_reads_like_yaml_1_2() -> None:
    spec = parse_spec(
        "name: t\ndata: {source: d.csv, target: y}\nmodel: {estimator: a.B, params: {country: NO, x: on}}\n"
        "deploy: {auto_promote: no}\n"
    )
    assert spec.model.params == {"country": "NO", "x": "on"}
    assert spec.deploy.auto_promote is False


def test_yaml_exponents_are_numbers() -> None:
    spec = parse_spec(
        "name: t\ndata: {source: d.csv, target: y}\n"
        "model: {estimator: a.B, params: {alpha: 1e-3, tol: 1.0e5, name: e1}}\n"
    )
    assert spec.model.params == {"alpha": 0.001, "tol": 100000.0, "name": "e1"}


def test_later_sections_are_kept_as_mappings() -> None:
    spec = parse_spec(
        "name: t\ndata: {source: d.csv, target: y}\nmodel: {estimator: a.B}\n"
        "monitor: {window: 1000}\nretrain: {on: {drift: {share: 0.4}}, window: all}\nbacktest: {}\n"
        "deploy: {strategy: {canary: {percent: 20}}}\n"
    )
    assert spec.monitor.window == 1000
    assert spec.retrain.on.drift is not None and spec.retrain.on.drift.share == 0.4
    assert spec.retrain.window.last_rows is None and spec.retrain.cooldown.rows == 2000
    assert spec.backtest.label_delay == 0
    assert (spec.deploy.strategy.kind, spec.deploy.strategy.percent) == ("canary", 20)


def test_dump_round_trips(text: str) -> None:
    spec = parse_spec(text)
    again = Spec.model_validate(spec.model_dump())
    assert again == spec and again.digest == spec.digest
    assert parse_spec(yaml.safe_dump(spec.model_dump(mode="json"))) == spec


def test_spec_is_frozen(text: str) -> None:
    spec = parse_spec(text)
    with pytest.raises(ValueError):
        spec.name = "other"  # type: ignore[misc]


def test_template_parses_and_holds_every_key() -> None:
    text = default_spec_yaml("churn", "data/churn.csv", "churned")
    spec = parse_spec(text)
    assert (spec.name, spec.data.source, spec.data.target) == ("churn", "data/churn.csv", "churned")
    assert spec.model.estimator.endswith("Classifier")
    assert "#" in text
    expected = _paths(spec.model_dump(mode="json"))
    assert _paths(_read_yaml(text, "tidal.yaml")[0]) == expected  # YAML 1.2: `on` is a key
    assert parse_spec(text).model_dump(exclude={"name", "data"}) == Spec(
        name="x", data={"source": "s", "target": "t"}, model={"estimator": spec.model.estimator}
    ).model_dump(exclude={"name", "data"})


def _paths(tree: object, prefix: str = "") -> set[str]:
    if not isinstance(tree, dict) or (prefix == "model.params"):
        return {prefix}
    out: set[str] = set()
    for key, value in tree.items():
        out |= _paths(value, f"{prefix}.{key}" if prefix else key)
    return out


def test_template_quotes_awkward_values_and_picks_a_regressor() -> None:
    text = default_spec_yaml("p", "data/a file: #1.csv", "yes", task="regression")
    spec = parse_spec(text)
    assert spec.data.source == "data/a file: #1.csv"
    assert spec.data.target == "yes"
    assert spec.model.task == "regression" and spec.model.estimator.endswith("Regressor")


def test_template_refuses_a_bad_name() -> None:
    with pytest.raises(SpecError, match="name: expected a project name"):
        default_spec_yaml("my project", "d.csv", "y")

