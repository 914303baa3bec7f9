"""One fresh process for `bench_startup.py`: prints the wall-clock time (time.time()) of a moment, then exits.

Modes:
  inventory DIR OUT the Qt classes of comfydesk's window with its panes built (offline, data dir DIR), to OUT.
  replica FILE      those Qt widgets (FILE from inventory) in a QMainWindow, pure PySide6: prints when shown
                    (the floor of `ready`).
  bare              a bare QMainWindow (same size as comfydesk's), shown: prints when its window is exposed.
  window URL DIR    `comfydesk --server URL --data-dir DIR` (the command's `main`): prints when the main
                    window is exposed (its frame: menus, docks, status bar; see `MainWindow`).
  ready URL DIR     the same, printing when the window has painted with its panes built and bound.
  catalog URL DIR N the same, printing when the nodes pane lists N node types (the server's whole catalog),
                    wherever in the start the pane is made.
  definitions URL DIR N
                    the same, printing when the app state holds the definitions of those N node types too
                    (what the forms and the pane's details need) and the pane lists them.
  session URL DIR N as definitions, but waits until the catalog is saved in DIR's cache (a "last session").

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
from PySide6.QtGui import QGuiApplication  # noqa: E402
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
    """Calls `on_exposed` once a top-level window is exposed, checking every millisecond of the event loop.

    Not an event filter on the application: PySide6 then calls into Python for every event of every object,
    wrapping each object and event (and making each class's Python type the first time), which costs a
    window of many widgets far more than the bare one: about 50 ms for one QLabel's events, measured.
    """

    def __init__(self, on_exposed: object) -> None:
        super().__init__()
        self.on_exposed = on_exposed
        self.fired = False
        self.timer = QTimer(self)
        self.timer.setInterval(1)  # coarse timers under 20 ms keep within 5%: no Qt enum made for this
        self.timer.timeout.connect(self.check)

    def start(self) -> None:
        self.timer.start()

    def check(self) -> None:
        if not self.fired and any(w.isExposed() for w in QGuiApplication.topLevelWindows()):
            self.fired = True
            self.timer.stop()
            self.on_exposed()  # type: ignore[operator]


app = QApplication(sys.argv[:1])

if MODE == "bare":
    watch = ExposeWatch(done)
    watch.start()
    win = QMainWindow()
    win.resize(1280, 800)
    win.show()
    app.exec()
elif MODE == "inventory":
    # comfydesk's window as it is when first exposed: the Qt class of every widget on screen, written to OUT
    # for the replica below. Not timed.
    import json
    from collections import Counter

    from PySide6.QtWidgets import QWidget

    data_dir, out_file = sys.argv[2], sys.argv[3]

    def take() -> None:
        from comfydesk.ui.main_window import MainWindow

        window = next(w for w in app.topLevelWidgets() if isinstance(w, MainWindow))
        if not getattr(window, "is_attached", True):  # the frame: take the window with its panes
            window.attached.connect(lambda: QTimer.singleShot(0, take))
            return
        found: Counter[str] = Counter()
        for w in [window, *window.findChildren(QWidget)]:
            if w.isVisible():
                qt = next(c for c in type(w).__mro__ if c.__module__.startswith("PySide6."))
                found[f"{qt.__module__}.{qt.__name__}"] += 1
        Path(out_file).write_text(json.dumps(sorted(found.items())), encoding="utf-8")
        sys.stdout.write(f"{time.time():.6f} inventory\n")  # the parent reads a line from every child
        sys.stdout.flush()
        os._exit(0)

    watch = ExposeWatch(lambda: QTimer.singleShot(0, take))
    watch.start()
    from comfydesk.gui import run

    run(None, Path(data_dir))
elif MODE == "replica":
    # The floor of comfydesk's first frame in PySide6: the same Qt widgets (class and number, from
    # `inventory`), made and shown with nothing of comfydesk (no app state, no style sheets, no data), plus
    # the asyncio loop the app needs. What comfydesk adds beyond this is its own code and data.
    import asyncio  # noqa: F401 - the app runs on it (qasync)
    import importlib
    import json

    import qasync  # noqa: F401
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    # Any PySide6 widget code names a Qt flag (an alignment, a size policy...): the first use of the `Qt`
    # namespace makes all its ~95 Python enums, so the floor has that cost too.
    _ = Qt.AlignmentFlag.AlignLeft

    inventory = json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
    watch = ExposeWatch(done)
    watch.start()
    win = QMainWindow()
    win.resize(1280, 800)
    holder = QWidget()
    layout = QVBoxLayout(holder)
    # The window itself, and parts Qt makes inside other widgets (a tree's header and scroll bars, a
    # splitter's handles, a tab widget's bar, the status bar's grip): made again by those here.
    skip = {
        f"PySide6.QtWidgets.{n}"
        for n in ("QMainWindow", "QHeaderView", "QScrollBar", "QSplitterHandle", "QTabBar", "QSizeGrip")
    }
    for name, count in inventory:
        if name in skip:
            continue
        module, cls_name = name.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), cls_name)
        for _ in range(count):
            try:
                w = cls()
            except (TypeError, NotImplementedError):  # abstract, or no default constructor: a plain widget
                w = QWidget()
            layout.addWidget(w)
    win.setCentralWidget(holder)
    win.show()
    app.exec()
else:
    url, data_dir = sys.argv[2], sys.argv[3]
    want = int(sys.argv[4]) if MODE in ("catalog", "definitions", "session") else 0

    def exposed() -> None:
        if MODE == "window":
            done()
        from comfydesk.ui.main_window import MainWindow

        window = next(w for w in app.topLevelWidgets() if isinstance(w, MainWindow))
        if MODE == "catalog":  # wherever the pane is made (the start lists cached nodes before the rest)
            watch_pane(window)
            return
        if getattr(window, "is_attached", True):  # an older tree (--before) builds it all at once
            attached(window)
        else:  # the frame is on screen; the panes are built into it next
            window.attached.connect(lambda: attached(window))

    def watch_pane(window: object) -> None:
        """Every millisecond of the event loop: leave once the nodes pane lists `want` node types."""
        timer = QTimer(app)
        timer.setInterval(1)

        def check() -> None:
            module = sys.modules.get("comfydesk.ui.node_pane")  # not imported here: that would be timed
            pane = window.findChild(module.NodePane) if module is not None else None  # type: ignore[attr-defined]
            if pane is not None:
                shown = pane.shown_count() if hasattr(pane, "shown_count") else len(pane.leaf_ids())
                if shown >= want:
                    timer.stop()
                    done()

        timer.timeout.connect(check)
        timer.start()
        check()

    def attached(window: object) -> None:
        from comfydesk.ui.main_window import MainWindow
        from comfydesk.ui.node_pane import NodePane

        assert isinstance(window, MainWindow)
        if MODE == "ready":
            painted = PaintWatch(window, done)
            window.installEventFilter(painted)
            window.update()
            return
        pane = window.findChild(NodePane)
        assert pane is not None

        def check(*_: object) -> None:
            shown = pane.shown_count() if hasattr(pane, "shown_count") else len(pane.leaf_ids())
            catalog = window.ctx.catalog.catalog
            if shown >= want and catalog is not None and len(catalog) >= want:
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

    class PaintWatch(QObject):
        """Calls `then` once `window` has painted with its panes (the first paint after they are built)."""

        def __init__(self, window: QObject, then: object) -> None:
            super().__init__(window)  # kept alive by the window
            self.window, self.then = window, then

        def eventFilter(self, obj: QObject, event: QEvent) -> bool:
            if obj is self.window and event.type() == QEvent.Type.Paint:
                QTimer.singleShot(0, self.then)  # type: ignore[arg-type]  # once this frame is flushed
            return False

    watch = ExposeWatch(exposed)
    watch.start()
    from comfydesk.cli import main  # what the `comfydesk` command runs

    main(["--server", url, "--data-dir", data_dir])
