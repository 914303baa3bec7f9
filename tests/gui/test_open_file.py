"""`comfydesk FILE`: a workflow given on the command line (or opened from the desktop) lands in the
library and is the one shown."""

from __future__ import annotations

import json
from pathlib import Path

import keyring
import qasync
from keyring.backends import fail
from pytestqt.qtbot import QtBot

from comfydesk.gui import create_main_window

WORKFLOW = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
}


def test_a_file_given_at_start_is_added_and_opened(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    source = tmp_path / "elsewhere" / "My workflow.json"
    source.parent.mkdir()
    source.write_text(json.dumps(WORKFLOW), encoding="utf-8")
    old = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    window = create_main_window(server="http://127.0.0.1:9", data_dir=tmp_path / "data", files=[source])
    try:
        window.show()
        qtbot.waitUntil(
            lambda: (
                window.ctx.library.current is not None
                and window.ctx.library.current.key == "local:My workflow.json"
            ),
            timeout=10_000,
        )
        copy = tmp_path / "data" / "workflows" / "My workflow.json"
        assert json.loads(copy.read_text(encoding="utf-8")) == WORKFLOW
        assert source.is_file()  # the original stays where it was
        qtbot.waitUntil(lambda: "My workflow" in window.workflow_title.text(), timeout=10_000)
    finally:
        window.close()
        qtbot.waitUntil(lambda: window.ctx.tasks.pending == 0, timeout=10_000)
        window.deleteLater()
        keyring.set_keyring(old)
