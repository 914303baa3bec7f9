"""Desktop integration: `--install-desktop` / `--uninstall-desktop` into a temporary XDG_DATA_HOME, the
launcher's command line, the MIME type, and `comfydesk [FILE ...]` on the command line."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from comfydesk import desktop
from comfydesk.cli import main, split_files
from tests.conftest import ROOT

COMMANDS = ["check", "nodes", "convert", "run", "serve", "demo-server"]


def _entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def test_install_writes_launcher_icon_and_mime_type_then_uninstall_removes_them(tmp_path: Path) -> None:
    home = tmp_path / "share"
    (home / "applications").mkdir(parents=True)
    other = home / "applications" / "other.desktop"
    other.write_text("[Desktop Entry]\nName=Other\n", encoding="utf-8")

    done = desktop.install_desktop(home, ["/opt/my apps/comfydesk"], refresh=False)

    launcher = home / "applications" / "comfydesk.desktop"
    entry = _entry(launcher)
    assert entry["Exec"] == '"/opt/my apps/comfydesk" %F'  # quoted: the path has a space
    assert entry["TryExec"] == '"/opt/my apps/comfydesk"'
    assert entry["Icon"] == "comfydesk" and entry["Type"] == "Application"
    assert "application/x-comfyui-workflow+json" in entry["MimeType"].split(";")
    assert "image/png" in entry["MimeType"].split(";")
    svg = home / "icons" / "hicolor" / "scalable" / "apps" / "comfydesk.svg"
    assert svg.read_bytes() == (ROOT / "resources" / "comfydesk.svg").read_bytes()
    mime = home / "mime" / "packages" / "comfydesk.xml"
    assert mime in done.files and launcher in done.files and svg in done.files

    gone = desktop.uninstall_desktop(home, refresh=False)
    assert set(gone.files) == set(done.files)
    assert not launcher.exists() and not svg.exists() and not mime.exists()
    assert other.is_file()  # another app's launcher stays


def test_uninstall_when_nothing_was_installed_removes_nothing(tmp_path: Path) -> None:
    assert desktop.uninstall_desktop(tmp_path / "empty", refresh=False).files == []


def test_mime_type_matches_both_workflow_formats_and_is_json() -> None:
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    root = ET.parse(ROOT / "resources" / "desktop" / "comfydesk-mime.xml").getroot()
    kind = root.find("m:mime-type", ns)
    assert kind is not None and kind.get("type") == desktop.MIME_TYPE
    parent = kind.find("m:sub-class-of", ns)
    assert parent is not None and parent.get("type") == "application/json"
    values = {m.get("value") for m in kind.iter(f"{{{ns['m']}}}match")}
    assert values == {'"last_node_id"', '"class_type"'}


def test_data_home_respects_absolute_xdg_data_home_only(tmp_path: Path) -> None:
    assert desktop.data_home({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path
    assert desktop.data_home({"XDG_DATA_HOME": "relative/dir"}) == Path.home() / ".local" / "share"
    assert desktop.data_home({}) == Path.home() / ".local" / "share"


@pytest.mark.skipif(sys.platform != "linux", reason="the desktop files are for Linux desktops")
def test_cli_install_and_uninstall_desktop_use_xdg_data_home(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    installed = subprocess.run(
        [sys.executable, "-m", "comfydesk", "--install-desktop"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    assert "Added comfydesk to your applications menu" in installed.stdout
    entry = _entry(tmp_path / "applications" / "comfydesk.desktop")
    program = entry["Exec"].removesuffix(" %F").split(" ")[0].strip('"')
    assert Path(program).is_file() and os.access(program, os.X_OK), entry["Exec"]
    removed = subprocess.run(
        [sys.executable, "-m", "comfydesk", "--uninstall-desktop"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert removed.returncode == 0, removed.stderr
    assert "Removed comfydesk" in removed.stdout
    assert not (tmp_path / "applications" / "comfydesk.desktop").exists()


def test_split_files_keeps_options_and_commands_apart() -> None:
    assert split_files(["a.json"], COMMANDS) == ([], ["a.json"])
    assert split_files(["--server", "http://x:1", "a.json", "b.png"], COMMANDS) == (
        ["--server", "http://x:1"],
        ["a.json", "b.png"],
    )
    assert split_files(["run", "wf.json", "--server", "s"], COMMANDS) == (
        ["run", "wf.json", "--server", "s"],
        [],
    )
    assert split_files(["--data-dir", "d", "--", "-odd.json"], COMMANDS) == (
        ["--data-dir", "d"],
        ["-odd.json"],
    )
    assert split_files(["--self-test"], COMMANDS) == (["--self-test"], [])


def test_a_missing_file_is_refused_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "nope.json")]) == 2
    assert "nope.json is neither a file nor a command" in capsys.readouterr().err


def test_a_file_with_a_command_or_self_test_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--self-test", str(tmp_path / "a.json")])
    assert exc.value.code == 2


@pytest.mark.skipif(
    not (shutil.which("gio") and shutil.which("update-mime-database")),
    reason="needs shared-mime-info and gio (libglib2.0-bin) to ask the desktop's MIME database",
)
def test_the_desktop_recognises_both_workflow_formats_and_leaves_other_json_alone(tmp_path: Path) -> None:
    home = tmp_path / "share"
    done = desktop.install_desktop(home, ["/usr/bin/true"])
    assert "update-mime-database" in done.refreshed
    files = {
        "ui.json": '{"id": "x", "revision": 0, "last_node_id": 3, "last_link_id": 2, "nodes": []}',
        "api.json": '{"1": {"class_type": "EmptyImage", "inputs": {}}}',
        "plain.json": '{"name": "not a workflow"}',
    }
    env = {**os.environ, "XDG_DATA_HOME": str(home), "XDG_DATA_DIRS": f"{home}:/usr/share"}
    kinds = {}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        out = subprocess.run(
            ["gio", "info", "-a", "standard::content-type", str(tmp_path / name)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        kinds[name] = out.rsplit(":", 1)[1].strip()
    assert kinds == {
        "ui.json": desktop.MIME_TYPE,
        "api.json": desktop.MIME_TYPE,
        "plain.json": "application/json",
    }
