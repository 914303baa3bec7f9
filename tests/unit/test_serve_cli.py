"""`comfydesk serve` on an install without the server extras says what to install, without a traceback."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from comfydesk.cli import main


def test_serve_without_the_server_extras_names_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "fastapi" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert main(["serve", "--data-dir", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "fastapi is not installed" in err and "comfydesk[server]" in err
    with pytest.raises(SystemExit, match=r"comfydesk\[server\]"):
        main(["serve", "token", "list", "--data-dir", str(tmp_path)])
    assert not (tmp_path / "gateway.db").exists()


def test_token_create_list_revoke(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path)]
    assert main(["serve", "token", "create", "alice", *where]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("cdk_") and len(secret) > 40
    assert main(["serve", "token", "create", "alice", *where]) == 1
    assert "exists already" in capsys.readouterr().err
    assert main(["serve", "token", "list", *where]) == 0
    listing = capsys.readouterr().out
    assert "alice\tuser\tactive" in listing and secret not in listing
    assert main(["serve", "token", "revoke", "alice", *where]) == 0
    assert main(["serve", "token", "revoke", "alice", *where]) == 1
    assert main(["serve", "token", "list", *where]) == 0
    assert "alice\tuser\trevoked" in capsys.readouterr().out
    stored = b"".join(f.read_bytes() for f in tmp_path.glob("gateway.db*"))  # WAL included
    assert stored and secret.encode() not in stored
