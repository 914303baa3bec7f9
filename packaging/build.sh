#!/usr/bin/env bash
# Builds the one-folder bundle dist/comfydesk/ only; packaging/build_linux.sh also makes the tarball and
# the .deb (docs/packaging.md).
set -euo pipefail
exec bash "$(dirname "$0")/build_linux.sh" --no-deb --no-tarball
