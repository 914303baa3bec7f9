#!/usr/bin/env bash
# Builds comfydesk for Linux: the PyInstaller one-folder bundle dist/comfydesk/, then from it
#   dist/comfydesk-VERSION-linux-ARCH.tar.gz  (unpack anywhere; `comfydesk/comfydesk --install-desktop`)
#   dist/comfydesk_VERSION_ARCH.deb           (/opt/comfydesk, /usr/bin/comfydesk, menu entry, icons, MIME)
# The version is the installed package's metadata (pyproject.toml). Icons are rendered from
# resources/comfydesk.svg here. Needs: .venv with the `package` extra (scripts/setup.sh installs it),
# binutils (objdump, for PyInstaller), dpkg-deb. lintian runs when installed. See docs/packaging.md.
# Usage: bash packaging/build_linux.sh [--no-deb] [--no-tarball]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=.venv/bin/python
DEB=1
TARBALL=1
for arg in "$@"; do
  case "$arg" in
    --no-deb) DEB=0 ;;
    --no-tarball) TARBALL=0 ;;
    *) echo "build_linux: unknown option $arg" >&2; exit 2 ;;
  esac
done

t0=$(date +%s)
if ! .venv/bin/python -c "import PyInstaller" 2>/dev/null; then
  "$PY" -m pip install -q -e '.[package]'
fi
VERSION=$("$PY" -c "from importlib.metadata import version; print(version('comfydesk'))")
ARCH=$(dpkg --print-architecture 2>/dev/null || uname -m)
echo "== comfydesk $VERSION ($ARCH)"

echo "== icons"
rm -rf build/icons
QT_QPA_PLATFORM=offscreen "$PY" packaging/render_icons.py build/icons >/dev/null

echo "== bundle (PyInstaller)"
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
  packaging/comfydesk.spec
BUNDLE=dist/comfydesk
INTERNAL=$BUNDLE/_internal
# The rendered PNGs travel with the bundle: --install-desktop copies them from here.
mkdir -p "$INTERNAL/resources/icons"
cp -r build/icons/hicolor "$INTERNAL/resources/icons/"
echo "bundle: $BUNDLE ($(du -sh "$BUNDLE" | cut -f1))"

if [ "$TARBALL" = 1 ]; then
  echo "== tarball"
  TAR=dist/comfydesk-$VERSION-linux-$ARCH.tar.gz
  tar -C dist -czf "$TAR" --owner=0 --group=0 --numeric-owner comfydesk
  echo "tarball: $TAR ($(du -h "$TAR" | cut -f1))"
fi

if [ "$DEB" = 1 ]; then
  echo "== .deb"
  STAGE=build/deb/comfydesk_${VERSION}_${ARCH}
  rm -rf build/deb
  mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
    "$STAGE/usr/share/mime/packages" "$STAGE/usr/share/icons" "$STAGE/usr/share/doc/comfydesk" \
    "$STAGE/usr/share/man/man1"
  cp -a "$BUNDLE" "$STAGE/opt/comfydesk"
  ln -s /opt/comfydesk/comfydesk "$STAGE/usr/bin/comfydesk"  # absolute across top-level dirs (policy 10.5)
  cp resources/desktop/comfydesk.desktop "$STAGE/usr/share/applications/comfydesk.desktop"
  cp resources/desktop/comfydesk-mime.xml "$STAGE/usr/share/mime/packages/comfydesk.xml"
  cp -r build/icons/hicolor "$STAGE/usr/share/icons/"
  cat > "$STAGE/usr/share/doc/comfydesk/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: comfydesk
Source: https://github.com/comfydesk/comfydesk

Files: *
Copyright: 2026 comfydesk developers
License: MIT

Files: opt/comfydesk/_internal/*
Copyright: the authors of Python, Qt (LGPL-3), PySide6 (LGPL-3) and the Python packages listed in
 opt/comfydesk/_internal/*.dist-info
License: various (see each package's license file in opt/comfydesk/_internal)

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
 associated documentation files (the "Software"), to deal in the Software without restriction, including
 without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is furnished to do so, subject to the
 following conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies or substantial
 portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.
EOF
  gzip -9n < packaging/comfydesk.1 > "$STAGE/usr/share/man/man1/comfydesk.1.gz"
  printf 'comfydesk (%s) unstable; urgency=medium\n\n  * Built by packaging/build_linux.sh.\n\n -- comfydesk developers <packages@comfydesk.invalid>  %s\n' \
    "$VERSION" "$(date -R)" | gzip -9n > "$STAGE/usr/share/doc/comfydesk/changelog.gz"
  # Debian permissions: directories 0755, files 0644, the one program 0755.
  find "$STAGE" -type d -exec chmod 0755 {} +
  find "$STAGE" -type f -exec chmod 0644 {} +
  chmod 0755 "$STAGE/opt/comfydesk/comfydesk"
  SIZE_KB=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
  cat > "$STAGE/DEBIAN/control" <<EOF
Package: comfydesk
Version: $VERSION
Architecture: $ARCH
Maintainer: comfydesk developers <packages@comfydesk.invalid>
Installed-Size: $SIZE_KB
Depends: sensible-utils, libc6 (>= 2.31), libgl1, libegl1, libxkbcommon0, libfontconfig1, libglib2.0-0, libdbus-1-3, libxcb-cursor0, libxkbcommon-x11-0, libxcb-icccm4, libxcb-keysyms1, libxcb-shape0, libxcb-render-util0, libxcb-image0
Section: graphics
Priority: optional
Homepage: https://github.com/comfydesk/comfydesk
Description: desktop app for running ComfyUI workflows through simple forms
 comfydesk runs ComfyUI workflows without a node graph: pick a workflow, fill in
 a form generated from the server's node definitions, press Run, and watch the
 progress until the pictures land in the gallery. It talks to a local or remote
 ComfyUI, can start a ComfyUI installed on this computer, and brings a built-in
 demo engine (procedural images, no AI model).
EOF
  (cd "$STAGE" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$STAGE/DEBIAN/md5sums"
  chmod 0644 "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/md5sums"
  DEBFILE=dist/comfydesk_${VERSION}_${ARCH}.deb
  # gzip: readable by every dpkg, and quick (xz saves ~15 MB but takes minutes on a 170 MB tree).
  dpkg-deb --root-owner-group "-Z${DEB_COMPRESSION:-gzip}" -z6 --build "$STAGE" "$DEBFILE" >/dev/null
  echo "deb: $DEBFILE ($(du -h "$DEBFILE" | cut -f1))"
  if command -v lintian >/dev/null 2>&1; then
    echo "== lintian (each remaining tag is explained in docs/packaging.md)"
    lintian --no-tag-display-limit "$DEBFILE" | cut -d' ' -f1-3 | sort | uniq -c | sort -rn || true
  fi
fi
echo "== done in $(( $(date +%s) - t0 )) s"
