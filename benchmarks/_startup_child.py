"""One fresh process for `bench_startup.py`: prints the wall-clock time (time.time()) of a moment, then exits.

Modes:
  bare              a bare QMainWindow (same size as comfydesk's), shown: prints when its window is exposed.
  window URL DIR    `comfydesk` on DIR with server URL (as `gui.run`): prints when the main window is exposed.
  catalog URL DIR N the same, printing when the nodes pane lists N node types (the server's whole catalog).
  session URL DIR N as catalog, but waits until the catalog is saved in DIR's cache (a "last session").

Run by bench_startup.py, not by hand. The process leaves with os._exit: shutdown is not start-up.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

MODE = sys.argv[1]
PROFILE = os.environ.get("COMFYDESK_STARTUP_PROFILE")  # a file: pyinstrument's text report of this start
if PROFILE:
    from pyinstrument import Profiler

    _profiler = Profiler(interval=0.0005)
    _profiler.start()
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEvent, QObject, QTimer  # noqa: E402
from PySide6.QtGui import QWindow  # noqa: E402
from PySide6.QtWidgets import QApplication, QMainWindow  # noqa: E402


def done(label: str = "") -> None:
    sys.stdout.write(f"{time.time():.6f} {label}\n")
    sys.stdout.flush()
    if PROFILE:
        _profiler.stop()
        with open(PROFILE, "w") as fh:
            fh.write(_profiler.output_text(unicode=False, color=False, timeline=True))
    os._exit(0)


class ExposeWatch(QObject):
    def __init__(self, on_exposed: object) -> None:
        super().__init__()
        self.on_exposed = on_exposed
        self.fired = False

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if (
            not self.fired
            and event.type() == QEvent.Type.Expose
            and isinstance(obj, QWindow)
            and obj.isExposed()
        ):
            self.fired = True
            self.on_exposed()  # type: ignore[operator]
        return False


app = QApplication(sys.argv[:1])

if MODE == "bare":
    watch = ExposeWatch(done)
    app.installEventFilter(watch)
    win = QMainWindow()
    win.resize(1280, 800)
    win.show()
    app.exec()
else:
    url, data_dir = sys.argv[2], sys.argv[3]
    want = int(sys.argv[4]) if MODE in ("catalog", "session") else 0

    def exposed() -> None:
        if MODE == "window":
            done()
        from comfydesk.ui.main_window import MainWindow
        from comfydesk.ui.node_pane import NodePane

        window = next(w for w in app.topLevelWidgets() if isinstance(w, MainWindow))
        pane = window.findChild(NodePane)
        assert pane is not None

        def check(*_: object) -> None:
            shown = pane.shown_count() if hasattr(pane, "shown_count") else len(pane.leaf_ids())
            if shown >= want:
                if MODE == "session":
                    wait_saved()
                else:
                    done()

        def wait_saved() -> None:
            """The last session: leave once the catalog it was given is saved for the next one."""
            saved = list((Path(data_dir) / "cache" / "catalogs").glob("*.json"))
            if saved:
                done()
            else:
                QTimer.singleShot(10, wait_saved)

        window.ctx.catalog.catalog_changed.connect(check)
        check()

    watch = ExposeWatch(exposed)
    app.installEventFilter(watch)
    from comfydesk.gui import run

    run(url, Path(data_dir))
