#!/usr/bin/env bash
# CI's packaging step (.ci/run, after the tests): build the bundle, the tarball and the .deb, then prove
# both work: the bundled binary's --self-test, and the binary of the .deb unpacked with dpkg-deb -x.
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=offscreen LANG=C.UTF-8 LC_ALL=C.UTF-8
start=$(date +%s)

bash packaging/build_linux.sh
built=$(date +%s)

if command -v desktop-file-validate >/dev/null 2>&1; then
  echo "== desktop-file-validate"
  desktop-file-validate resources/desktop/comfydesk.desktop
fi

echo "== self-test: dist/comfydesk/comfydesk"
HOME_DIR=$(mktemp -d)
trap 'rm -rf "$HOME_DIR" "${UNPACK:-}"' EXIT
HOME="$HOME_DIR" dist/comfydesk/comfydesk --self-test
echo "== --install-desktop from the bundle (into a temporary XDG_DATA_HOME)"
HOME="$HOME_DIR" XDG_DATA_HOME="$HOME_DIR/share" dist/comfydesk/comfydesk --install-desktop >/dev/null
for f in applications/comfydesk.desktop mime/packages/comfydesk.xml icons/hicolor/48x48/apps/comfydesk.png \
  icons/hicolor/scalable/apps/comfydesk.svg; do
  test -f "$HOME_DIR/share/$f" || { echo "ci_package: --install-desktop did not write $f" >&2; exit 1; }
done

echo "== self-test: the .deb, unpacked"
DEBFILE=$(ls -t dist/comfydesk_*.deb | head -1)
UNPACK=$(mktemp -d)
dpkg-deb -x "$DEBFILE" "$UNPACK"
[ "$(readlink "$UNPACK/usr/bin/comfydesk")" = /opt/comfydesk/comfydesk ] \
  || { echo "ci_package: /usr/bin/comfydesk does not point at /opt/comfydesk/comfydesk" >&2; exit 1; }
test -f "$UNPACK/usr/share/applications/comfydesk.desktop"
test -f "$UNPACK/usr/share/mime/packages/comfydesk.xml"
test -f "$UNPACK/usr/share/icons/hicolor/48x48/apps/comfydesk.png"
HOME="$HOME_DIR" "$UNPACK/opt/comfydesk/comfydesk" --self-test  # the link is absolute: /opt is not ours here

end=$(date +%s)
echo "== packaging step: $((end - start)) s (build $((built - start)) s, self-tests $((end - built)) s)"
