"""``deploy.auth``: /predict and /feedback of ``tidal serve`` need a token with their scope; a revoked token
is refused by the next request; the other routes stay open; no token reaches the server's log."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pandas as pd

from tests.serve.server import ServerProcess
from tests.ui.conftest import bearer
from tidal.workspace import Workspace


def test_predict_and_feedback_need_their_scope(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "served"
    shutil.copytree(project, root)
    spec = root / "tidal.yaml"
    spec.write_text(spec.read_text().replace("deploy:\n", "deploy:\n  auth: [predict, feedback]\n", 1))
    with Workspace.open(root) as ws:
        assert ws.spec.deploy.auth == ["predict", "feedback"]
        client = ws.tokens.create("app", role="none", scopes=["predict"])[1]
        viewer = ws.tokens.create("looker", role="viewer")[1]
        labeller = ws.tokens.create("labels", role="none", scopes=["feedback"])[1]
    rows = pd.read_csv(root / "data" / "elec2.csv").tail(3).drop(columns=["up"])
    body = {"instances": rows.to_dict(orient="records")}
    with ServerProcess(root) as srv:
        r = httpx.post(f"{srv.url}/predict", json=body)
        assert r.status_code == 401 and r.json() == {"error": "/predict needs a token with the scope predict "
                                                              "(deploy.auth)"}
        r = httpx.post(f"{srv.url}/predict", json=body, headers=bearer("tidal_0123456789ab_" + "y" * 43))
        assert (r.status_code, r.json()["error"]) == (401, "unknown token")
        r = httpx.post(f"{srv.url}/predict", json=body, headers=bearer(viewer))
        assert r.status_code == 403 and "lacks the scope predict" in r.json()["error"]
        r = httpx.post(f"{srv.url}/predict", json=body, headers=bearer(client))
        assert r.status_code == 200, r.text
        ids = r.json()["prediction_ids"]
        label = {"prediction_id": ids[0], "label": 1}
        assert httpx.post(f"{srv.url}/feedback", json=label, headers=bearer(client)).status_code == 403
        assert httpx.post(f"{srv.url}/feedback", json=label, headers=bearer(labeller)).status_code == 200
        assert httpx.get(f"{srv.url}/healthz").status_code == 200  # the other routes stay open
        with Workspace.open(root) as ws:
            ws.tokens.revoke("app")
        r = httpx.post(f"{srv.url}/predict", json=body, headers=bearer(client))
        assert (r.status_code, r.json()["error"]) == (401, f"token {client.split('_')[1]} was revoked")
        log = srv.log.read_text()
    for token in (client, viewer, labeller):
        assert token.split("_", 2)[2] not in log


def test_serve_ui_serves_the_api_beside_the_model_in_one_process(project: Path, admin: str) -> None:
    import os
    import subprocess
    import sys
    import time

    from tests.serve.server import free_port
    from tests.ui.conftest import REPO

    port = free_port()
    log = project.parent / f"serve-ui-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tidal", "-C", str(project), "serve", "--ui", "--port",
                                 str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert httpx.get(f"{url}/api/v1/whoami", headers=bearer(admin)).json()["token"]["name"] == "root"
        assert httpx.get(f"{url}/api/v1/models").status_code == 401
        assert httpx.get(f"{url}/model").json()["name"] == "elec2"
        # the dashboard too: its page at / and its files under /ui/static
        page = httpx.get(f"{url}/")
        assert page.status_code == 200 and '<script src="/ui/static/app.js" defer></script>' in page.text
        assert httpx.get(f"{url}/ui/static/uPlot.iife.min.js").status_code == 200
    finally:
        proc.terminate()
        proc.wait(20)
