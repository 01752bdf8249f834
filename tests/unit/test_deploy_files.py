"""The deployment files (issue #16, point 5), checked as far as this machine can: ``deploy/compose.yaml`` against the
Compose specification's own JSON schema (the copy check-jsonschema ships), every Kubernetes manifest under
``deploy/k8s`` against the Kubernetes API schemas of kubernetes-validate (strict: an unknown field is an error),
and every tidal command line in them against tidal's own CLI (a renamed option fails here, not on a cluster).
What was not run — no Docker daemon and no cluster here — is listed in deploy/README.md.
"""

from __future__ import annotations

import json
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
#: The oldest Kubernetes release the manifests are written for.
KUBERNETES = "1.29"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, doc) for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def _tidal_lines() -> list[tuple[str, list[str]]]:
    """Every tidal command line of the compose services and the manifests' containers."""
    lines = [(f"compose:{name}", [str(a) for a in svc["command"]]) for name, svc in _compose()["services"].items()
             if svc.get("image", "").startswith("tidal") and "entrypoint" not in svc and "command" in svc]
    for file, doc in _manifests():
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            if container["image"].startswith("tidal") and "command" not in container:
                lines.append((f"{file}:{container['name']}", [str(a) for a in container["args"]]))
    return lines


def test_compose_follows_the_compose_specification() -> None:
    import jsonschema

    schema = json.loads(resources.files("check_jsonschema.builtin_schemas.vendor")
                        .joinpath("compose-spec.json").read_text())
    errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(_compose()), key=str)
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


@pytest.mark.parametrize(("file", "doc"), _manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_each_manifest_follows_the_kubernetes_api(file: str, doc: dict[str, Any]) -> None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{file} {doc['kind']} {doc['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}")


def test_the_manifests_hold_every_part() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in _manifests()}
    assert {("Deployment", "tidal-serve"), ("Service", "tidal-serve"), ("Deployment", "tidal-loop"),
            ("Job", "tidal-train"), ("Deployment", "ray-head"), ("Service", "ray-head"),
            ("Deployment", "ray-worker"), ("ConfigMap", "tidal-project"), ("ConfigMap", "tidal-settings"),
            ("Deployment", "tidal-ui"), ("Service", "tidal-ui")} <= kinds
    services = set(_compose()["services"])
    assert {"postgres", "minio", "bucket", "ray-head", "ray-worker", "train", "serve", "ui", "loop"} <= services
    assert not [s for s in _manifests() if s[1]["kind"] == "Secret"], "no secret is written in the manifests"


@pytest.mark.parametrize(("where", "argv"), _tidal_lines(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_tidal_command_line_is_one_tidal_accepts(where: str, argv: list[str]) -> None:
    import typer

    from tidal.cli import main  # noqa: F401 - registers every command
    from tidal.cli.app import app

    command: Any = typer.main.get_command(app)  # a click command of the click that typer ships
    ctx = command.make_context("tidal", list(argv))
    while hasattr(command, "resolve_command"):  # a group: the root's options, then each (sub)command's own
        rest = [*(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])), *ctx.args]
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None, f"{where}: {name!r} is not a tidal command"
        command, ctx = sub, sub.make_context(name or "", rest, parent=ctx)
    assert not ctx.args, f"{where}: tidal does not take {ctx.args}"


def test_the_settings_and_extras_they_use_exist() -> None:
    # the variables tidal reads: the stores' settings, and the dashboard's session key (tidal.ui.auth)
    settings = "".join((REPO / "src" / "tidal" / p).read_text() for p in ("core/settings.py", "ui/auth.py"))
    used = set(re.findall(r"\bTIDAL_[A-Z_]+", (DEPLOY / "compose.yaml").read_text()
                          + "".join(p.read_text() for p in (DEPLOY / "k8s").glob("*.yaml"))))
    assert used and all(name in settings for name in used), used - set(re.findall(r"\bTIDAL_[A-Z_]+", settings))
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    wanted = re.search(r'pip install "/src\[([a-z0-9,]+)\]"', (DEPLOY / "Dockerfile").read_text())
    assert wanted is not None and set(wanted.group(1).split(",")) <= extras


def test_the_example_project_file_is_a_valid_spec() -> None:
    from tidal.spec.loading import parse_spec

    project = next(doc for _, doc in _manifests() if doc["metadata"]["name"] == "tidal-project")
    spec = parse_spec(project["data"]["tidal.yaml"])
    assert spec.data.source == "s3://tidal-data/elec2.csv"
