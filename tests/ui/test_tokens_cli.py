"""``tidal tokens create/ls/revoke`` and ``tidal loop --status/--pause/--resume``: the token is printed once,
never listed, and each command is an event naming who ran it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tidal.cli.main import main
from tidal.workspace import Workspace


def test_tokens_are_printed_once_and_never_listed(project: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "copy"
    shutil.copytree(project, root)
    capsys.readouterr()
    assert main(["-C", str(root), "tokens", "create", "--name", "ci", "--role", "operator", "--expires", "30d"]) == 0
    out = capsys.readouterr()
    text = out.out.strip()
    assert text.startswith("tidal_") and "shown this once" in out.err
    token_id, secret = text.split("_")[1], text.split("_", 2)[2]
    assert main(["-C", str(root), "tokens", "ls", "--json"]) == 0
    listed = capsys.readouterr().out
    assert secret not in listed
    ci = next(t for t in json.loads(listed) if t["id"] == token_id)
    assert (ci["name"], ci["role"], ci["revoked_at"]) == ("ci", "operator", None) and ci["expires_at"]
    assert main(["-C", str(root), "tokens", "ls"]) == 0
    assert secret not in capsys.readouterr().out
    for bad, message in ((["--role", "king"], "unknown role 'king'"), (["--scope", "train"], "unknown scope 'train'"),
                         (["--expires", "soon"], "--expires 'soon' is not a lifetime")):
        assert main(["-C", str(root), "tokens", "create", "--name", "x", *bad]) == 2
        assert message in capsys.readouterr().err
    assert main(["-C", str(root), "tokens", "revoke", "ci", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["revoked_by"].startswith("local:")
    assert main(["-C", str(root), "tokens", "revoke", "nobody"]) == 2
    assert "no token 'nobody'" in capsys.readouterr().err
    assert main(["-C", str(root), "loop", "--pause", "--reason", "upgrade", "--json"]) == 0
    paused = json.loads(capsys.readouterr().out)["paused"]
    assert paused["reason"] == "upgrade" and paused["by"].startswith("local:")
    assert main(["-C", str(root), "loop", "--pause", "--resume"]) == 2
    assert "do not go together" in capsys.readouterr().err
    assert main(["-C", str(root), "loop", "--resume"]) == 0
    with Workspace.open(root) as ws:
        kinds = [e.kind for e in ws.events(limit=4)]
        assert kinds == ["token.created", "token.revoked", "loop.paused", "loop.resumed"]
        assert all(secret not in json.dumps(e.data) + e.message for e in ws.events(limit=1000))
