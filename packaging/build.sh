#!/usr/bin/env bash
# Builds a one-folder bundle in dist/comfydesk/ with PyInstaller (needs Debian's binutils on Linux).
# Usage: bash scripts/setup.sh && bash packaging/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pip install -q -e '.[package]'
.venv/bin/pyinstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller packaging/comfydesk.spec
echo "built: dist/comfydesk/comfydesk ($(du -sh dist/comfydesk | cut -f1))"
