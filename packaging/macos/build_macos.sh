#!/usr/bin/env bash
# macOS build (NOT built or tested here: see docs/packaging.md): dist/comfydesk.app and
# dist/comfydesk-VERSION-macos.dmg. Needs Python 3.11+ (python.org or Homebrew) and Xcode's command-line
# tools (iconutil, hdiutil). Signing and notarization: see docs/packaging.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e '.[server,package]'
VERSION=$(.venv/bin/python -c "from importlib.metadata import version; print(version('comfydesk'))")
QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/render_icons.py build/icons
ICONSET=build/icons/comfydesk.iconset
rm -rf "$ICONSET" && mkdir -p "$ICONSET"
for n in 16 32 128 256 512; do
  cp "build/icons/hicolor/${n}x${n}/apps/comfydesk.png" "$ICONSET/icon_${n}x${n}.png"
done
for n in 16 128 256; do
  cp "build/icons/hicolor/$((n * 2))x$((n * 2))/apps/comfydesk.png" "$ICONSET/icon_${n}x${n}@2x.png"
done
cp build/icons/hicolor/64x64/apps/comfydesk.png "$ICONSET/icon_32x32@2x.png"
iconutil -c icns "$ICONSET" -o build/icons/comfydesk.icns
.venv/bin/pyinstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller-macos \
  packaging/macos/comfydesk-macos.spec
dist/comfydesk.app/Contents/MacOS/comfydesk --self-test
rm -f "dist/comfydesk-$VERSION-macos.dmg"
STAGE=$(mktemp -d)
cp -R dist/comfydesk.app "$STAGE/"
ln -s /Applications "$STAGE/Applications"
hdiutil create -volname "comfydesk $VERSION" -srcfolder "$STAGE" -ov -format UDZO "dist/comfydesk-$VERSION-macos.dmg"
rm -rf "$STAGE"
echo "built dist/comfydesk.app and dist/comfydesk-$VERSION-macos.dmg"
