"""A wheel (`pip install .`, not editable) carries everything the app reads at run time: the demo engine's
catalogue and samples, the desktop files and icon (comfydesk/resources), the gateway's migrations."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_for_the_wheel() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "comfydesk").rglob("__init__.py")}
    assert found | {"comfydesk.resources"} == listed


@pytest.mark.slow
def test_an_installed_wheel_finds_its_resources(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("comfydesk-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    names = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert "comfydesk/resources/desktop/comfydesk.desktop" in names
    assert "comfydesk/gateway/migrations/versions/0002_queue.py" in names
    probe = (
        "from comfydesk.testing.demo import resources_dir, sample_workflows_dir;"
        "from comfydesk import desktop;"
        "print(resources_dir()); print(desktop.resources_dir());"
        "print(len(list(sample_workflows_dir().glob('*.json'))))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {probe}"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    assert out[0] == out[1] == str(site / "comfydesk" / "resources")
    assert int(out[2]) == len(list((ROOT / "resources" / "workflows").glob("*.json")))
