#!/usr/bin/env bash
# Installs what comfydesk needs on a Debian/Ubuntu machine: Qt's system libraries (apt, only when
# missing), a virtualenv in .venv, and the project with its dev, server and package (PyInstaller) extras.
set -euo pipefail
cd "$(dirname "$0")/.."

QT_DEBS=(libgl1 libegl1 libxkbcommon0 libfontconfig1 libglib2.0-0 libdbus-1-3 curl postgresql)  # curl: docs/api.md examples, run by the tests; postgresql: the gateway tests start a throwaway cluster
# A real window (not offscreen) on X11 also needs these.
# Packaging (packaging/build_linux.sh, run by .ci/run): PyInstaller needs binutils; dpkg-deb is in dpkg;
# the desktop files are checked with desktop-file-utils, shared-mime-info and gio (libglib2.0-bin).
PACKAGING_DEBS=(binutils desktop-file-utils shared-mime-info libglib2.0-bin)
X11_DEBS=(libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-render-util0 libxcb-image0)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${QT_DEBS[@]}" "${X11_DEBS[@]}" "${PACKAGING_DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[dev,server,package]' 2>&1 | grep -v "is ignored: it is neither" || true
.venv/bin/python -c "import comfydesk, PySide6.QtWidgets" || { echo "setup: install failed" >&2; exit 1; }
echo "setup: ready (.venv)" >&2
