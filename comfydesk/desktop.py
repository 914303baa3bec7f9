"""`comfydesk --install-desktop` / `--uninstall-desktop`: comfydesk in the desktop's application menu for
the tarball and pip installs (the .deb installs the same files system-wide).

Writes into `$XDG_DATA_HOME` (default `~/.local/share`): `applications/comfydesk.desktop` (launching this
very install), the icon in `icons/hicolor/` (the SVG, and the PNG sizes when the build rendered them), and
`mime/packages/comfydesk.xml`, the MIME type that makes ComfyUI workflow JSON files open in comfydesk; then
refreshes the desktop's caches when their tools are installed. Uninstalling removes exactly those files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "APP_ID",
    "DesktopFiles",
    "cli_install",
    "data_home",
    "exec_command",
    "install_desktop",
    "resources_dir",
    "uninstall_desktop",
]

APP_ID = "comfydesk"
MIME_TYPE = "application/x-comfyui-workflow+json"


def resources_dir() -> Path:
    """`resources/` beside the package (source checkout, editable install) or in the bundle."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "resources", package / "resources"):
        if (candidate / "desktop" / f"{APP_ID}.desktop").is_file():
            return candidate
    raise FileNotFoundError(f"comfydesk's desktop files were not found near {package}")


def data_home(environ: dict[str, str] | None = None) -> Path:
    """`$XDG_DATA_HOME` when absolute (the spec ignores a relative one), else ~/.local/share."""
    env = os.environ if environ is None else environ
    value = env.get("XDG_DATA_HOME", "")
    if value and Path(value).is_absolute():
        return Path(value)
    return Path.home() / ".local" / "share"


def _quote(arg: str) -> str:
    """An Exec= argument, quoted as the desktop entry spec wants when it has reserved characters."""
    if arg and not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`"):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return f'"{escaped}"'


def exec_command() -> list[str]:
    """How to start this install: the bundle's binary, the `comfydesk` script of this environment, or
    this Python with `-m comfydesk`."""
    if getattr(sys, "frozen", False):
        return [str(Path(sys.executable).resolve())]
    script = Path(sys.executable).parent / APP_ID
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which(APP_ID)
    if found:
        return [str(Path(found).resolve())]
    return [str(Path(sys.executable).resolve()), "-m", APP_ID]


@dataclass
class DesktopFiles:
    """What installing wrote (or uninstalling removed), and the cache tools that ran."""

    files: list[Path] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)


def _targets(home: Path) -> tuple[Path, Path, Path]:
    return (
        home / "applications" / f"{APP_ID}.desktop",
        home / "mime" / "packages" / f"{APP_ID}.xml",
        home / "icons" / "hicolor",
    )


def _icon_sources(resources: Path) -> list[tuple[Path, str]]:
    """(source, path under hicolor/) for the scalable icon and each rendered size the build left."""
    out = [(resources / f"{APP_ID}.svg", f"scalable/apps/{APP_ID}.svg")]
    rendered = resources / "icons" / "hicolor"
    if rendered.is_dir():
        for png in sorted(rendered.glob(f"*/apps/{APP_ID}.png")):
            out.append((png, str(png.relative_to(rendered))))
    return out


def _refresh(home: Path, *, icons: bool) -> list[str]:
    """Run the cache tools that exist (none is required: desktops rescan on their own, just later)."""
    ran: list[str] = []
    commands = [
        ["update-mime-database", str(home / "mime")],
        ["update-desktop-database", "-q", str(home / "applications")],
    ]
    if icons and (home / "icons" / "hicolor" / "index.theme").is_file():
        commands.append(["gtk-update-icon-cache", "-q", "-t", str(home / "icons" / "hicolor")])
    for cmd in commands:
        if shutil.which(cmd[0]) is None or not Path(cmd[-1]).is_dir():
            continue
        try:
            subprocess.run(cmd, check=False, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        ran.append(cmd[0])
    return ran


def install_desktop(
    home: Path | None = None, command: list[str] | None = None, *, refresh: bool = True
) -> DesktopFiles:
    """Install the launcher, icons and MIME type for the user (see the module docstring)."""
    home = home or data_home()
    resources = resources_dir()
    desktop, mime, hicolor = _targets(home)
    argv = command or exec_command()
    exec_line = " ".join(_quote(a) for a in argv)
    lines = []
    for line in (resources / "desktop" / f"{APP_ID}.desktop").read_text(encoding="utf-8").splitlines():
        if line.startswith("Exec="):
            line = f"Exec={exec_line} %F"
        elif line.startswith("TryExec="):
            line = f"TryExec={_quote(argv[0])}"
        lines.append(line)
    result = DesktopFiles()
    desktop.parent.mkdir(parents=True, exist_ok=True)
    desktop.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result.files.append(desktop)
    mime.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(resources / "desktop" / f"{APP_ID}-mime.xml", mime)
    result.files.append(mime)
    for source, relative in _icon_sources(resources):
        target = hicolor / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        result.files.append(target)
    if refresh:
        result.refreshed = _refresh(home, icons=True)
    return result


def uninstall_desktop(home: Path | None = None, *, refresh: bool = True) -> DesktopFiles:
    """Remove what `install_desktop` wrote (other apps' files and folders stay)."""
    home = home or data_home()
    desktop, mime, hicolor = _targets(home)
    result = DesktopFiles()
    candidates = [desktop, mime]
    if hicolor.is_dir():
        candidates += sorted(hicolor.glob(f"*/apps/{APP_ID}.png")) + sorted(
            hicolor.glob(f"*/apps/{APP_ID}.svg")
        )
    for path in candidates:
        if path.is_file() or path.is_symlink():
            path.unlink()
            result.files.append(path)
    if refresh:
        result.refreshed = _refresh(home, icons=True)
    return result


def cli_install(*, install: bool) -> int:
    """The CLI side: do it, say what was written or removed in plain words."""
    if sys.platform != "linux" and not sys.platform.startswith("freebsd"):
        print(
            "comfydesk: --install-desktop is for Linux desktops; the Windows and macOS installers add "
            "comfydesk to the Start menu / Applications themselves.",
            file=sys.stderr,
        )
        return 2
    home = data_home()
    try:
        result = install_desktop(home) if install else uninstall_desktop(home)
    except (OSError, FileNotFoundError) as exc:
        print(
            f"comfydesk: could not {'install' if install else 'remove'} the desktop files: {exc}",
            file=sys.stderr,
        )
        return 1
    if install:
        print(f"Added comfydesk to your applications menu ({len(result.files)} files in {home}).")
        print("ComfyUI workflow files (.json) now offer to open in comfydesk.")
    elif result.files:
        print(f"Removed comfydesk from your applications menu ({len(result.files)} files in {home}).")
    else:
        print(f"comfydesk was not in your applications menu ({home}); nothing to remove.")
    for path in result.files:
        print(f"  {path}")
    return 0
