"""The main window: library, queue and the form panel (with its run bar) on the left, the canvas in the
centre (the image: live preview, final output, a batch's grid; the progress bar under it) with this
workflow's recent results under it, the gallery on the right, connection state in the status bar.

The window binds views to the models of an `AppContext` and turns user actions into calls of their slots;
it never talks to a server itself. What the canvas, banner and batch count show follows the workflow on
screen (`comfydesk.ui.run_view`). Layout (geometry, docks, splitter) is remembered in the settings
(`comfydesk.ui.window_layout`).
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QEvent, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QPalette
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QSplitter, QVBoxLayout, QWidget

from comfydesk.ui.theme import BACKDROP
from comfydesk.ui.window_layout import (
    CANVAS_MIN_SIZE,
    LIBRARY_TAB_KEY,
    SPLITTER_KEY,
    restore_geometry,
    restore_layout,
    save_layout,
    set_dock_pane,
)

if TYPE_CHECKING:
    # The window's parts and the app state are imported by `attach`, after the frame is on screen (see
    # `MainWindow`): they are most of start-up.
    from PySide6.QtWidgets import QStackedWidget, QTabWidget

    from comfydesk.app.context import AppContext
    from comfydesk.app.library import CurrentWorkflow
    from comfydesk.app.missing import MissingPiecesModel
    from comfydesk.backends.base import ConnectionStatus
    from comfydesk.core.nodes import NodeCatalog, NodeListing
    from comfydesk.store.settings import Settings
    from comfydesk.ui.canvas import RunCanvas
    from comfydesk.ui.error_view import ErrorView
    from comfydesk.ui.first_run import FirstRunPanel
    from comfydesk.ui.form_panel import FormPanel
    from comfydesk.ui.gallery import GalleryPane, GalleryView
    from comfydesk.ui.gateway_ui import GatewayUi
    from comfydesk.ui.node_pane import NodePane
    from comfydesk.ui.profiles_dialog import ProfilesDialog
    from comfydesk.ui.queue_view import QueueView
    from comfydesk.ui.results import ResultsStrip
    from comfydesk.ui.run_view import RunView
    from comfydesk.ui.server_log import ServerLogPanel
    from comfydesk.ui.settings_dialog import SettingsUi
    from comfydesk.ui.status_line import StatusLine
    from comfydesk.ui.template_browser import TemplateBrowser
    from comfydesk.ui.viewer_actions import GalleryActionSet
    from comfydesk.ui.workflow_pane import WorkflowPane

__all__ = ["SPLITTER_KEY", "MainWindow"]

STRIP_THUMB = 64  # px: the strip of recent results under the canvas stays small


class MainWindow(QMainWindow):
    """See the module docstring. Object names are stable API for tests and style sheets.

    Made in steps. The frame (`MainWindow(settings=...)`): size and place, the menu bar's menus, the
    docks with their titles, "Starting…" in the status bar: Qt and the settings file only, so the window is
    on screen a moment after the process starts. `show_node_list(listing)` (optional) then lists the nodes
    the node cache keeps of the server. `attach(ctx)` then imports the other panes and binds them all to
    the app state. `MainWindow(ctx)` does it all at once (tests, embedding); `comfydesk.gui.run` shows the
    frame first, then the node list, then the rest.
    """

    attached = Signal()
    """`attach` has built the panes and bound them to the app state."""

    # Made by comfydesk.ui.window_menus (build_actions, build_menus).
    open_action: QAction
    reveal_action: QAction
    quit_action: QAction
    run_action: QAction
    cancel_action: QAction
    reset_action: QAction
    focus_form_action: QAction
    profiles_action: QAction
    reconnect_action: QAction
    demo_action: QAction
    templates_action: QAction
    about_action: QAction
    # Made with the frame.
    file_menu: QMenu
    run_menu: QMenu
    view_menu: QMenu
    server_menu: QMenu
    help_menu: QMenu
    ctx: AppContext

    def __init__(
        self,
        ctx: AppContext | None = None,
        parent: QWidget | None = None,
        *,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle("comfydesk")
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self.is_attached = False
        self.frame_settings = ctx.settings if ctx is not None else settings
        """The settings the frame was laid out from (the app state's, when `ctx` is given)."""
        self._build_frame()
        restore_geometry(self, self.frame_settings)
        if ctx is not None:
            self.attach(ctx)

    def _build_frame(self) -> None:
        """What the first frame shows: the menus (filled by `attach`), the docks where they go (empty), a
        word in the status bar. Layout from the settings is applied to it before it is shown."""
        bar = self.menuBar()
        self.file_menu = bar.addMenu("&File")
        self.run_menu = bar.addMenu("&Run")
        self.view_menu = bar.addMenu("&View")  # the Theme submenu goes here (install_settings)
        self.server_menu = bar.addMenu("&Server")
        self.help_menu = bar.addMenu("&Help")
        self.library_dock = self._dock("Library", "libraryDock")
        self.form_dock = self._dock("Workflow", "formDock")
        self.queue_dock = self._dock("Queue", "queueDock")
        self.gallery_dock = self._dock("Gallery", "galleryDock")
        self.server_log_dock = self._dock("Server log", "serverLogDock")
        # The form panel beside the library: resizable, closable (View menu, Ctrl+Shift+F), floatable.
        self.form_dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        self.addDockWidget(left, self.library_dock)
        self.addDockWidget(left, self.form_dock)
        self.splitDockWidget(self.library_dock, self.form_dock, Qt.Orientation.Horizontal)
        self.addDockWidget(left, self.queue_dock)
        self.splitDockWidget(self.library_dock, self.queue_dock, Qt.Orientation.Vertical)  # under the library
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.gallery_dock)
        # A ComfyUI installed on this computer, started by comfydesk: its log, live (hidden until used).
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.server_log_dock)
        self.server_log_dock.hide()
        self._size_docks()
        # Where the image will be: the canvas's dark backdrop under the space its toolbar takes.
        centre = QWidget()
        centre.setObjectName("startingCentre")
        backdrop = QWidget(centre)
        palette = backdrop.palette()
        palette.setColor(QPalette.ColorRole.Window, BACKDROP)
        backdrop.setPalette(palette)
        backdrop.setAutoFillBackground(True)
        layout = QVBoxLayout(centre)
        layout.setContentsMargins(6, 32, 6, 6)
        layout.addWidget(backdrop)
        centre.setMinimumSize(*CANVAS_MIN_SIZE)  # as the centre that replaces it: the docks keep their room
        self.setCentralWidget(centre)
        self.statusBar().showMessage("Starting…")

    def _dock(self, title: str, name: str) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(QWidget())  # its pane comes with `attach`
        return dock

    def _size_docks(self) -> None:
        self.resizeDocks([self.library_dock, self.form_dock], [210, 500], Qt.Orientation.Horizontal)
        self.resizeDocks([self.library_dock, self.queue_dock], [560, 160], Qt.Orientation.Vertical)
        self.resizeDocks([self.gallery_dock], [240], Qt.Orientation.Horizontal)

    @property
    def lists_nodes(self) -> bool:
        """True once the library dock holds its tabs and the nodes pane (`show_node_list`)."""
        return hasattr(self, "node_pane")

    def show_node_list(self, listing: NodeCatalog | Sequence[NodeListing] | None) -> None:
        """The library dock's tabs, with the nodes pane listing `listing` (a catalog, or only what a list
        shows of each node; None: nothing yet), before the app state exists: the start (`comfydesk.gui.run`)
        lists the nodes the node cache keeps of the server it is about to connect to (or the definitions it
        asked that server for) right after the frame. `attach` binds the pane to the catalog (whose
        definitions replace the list without redrawing it when it lists the same nodes) and puts the
        workflows pane in front of it."""
        from PySide6.QtWidgets import QTabWidget

        from comfydesk.core.nodes import NodeCatalog
        from comfydesk.ui.node_pane import NodePane

        if self.lists_nodes:
            raise RuntimeError("the window lists its nodes already")
        if isinstance(listing, NodeCatalog):
            self.node_pane: NodePane = NodePane(initial=listing)
        else:
            self.node_pane = NodePane(listing=listing)
        self.left_tabs: QTabWidget = QTabWidget()
        self.left_tabs.setObjectName("leftTabs")
        self.left_tabs.addTab(QWidget(), "&Workflows")  # its pane comes with `attach`
        self.left_tabs.addTab(self.node_pane, "&Nodes")
        settings = self.frame_settings
        if settings is not None and settings.get(LIBRARY_TAB_KEY) == "nodes":  # where the user left it
            self.left_tabs.setCurrentWidget(self.node_pane)
        set_dock_pane(self.library_dock, self.left_tabs)

    def attach(self, ctx: AppContext) -> None:
        """Build the panes into the frame and bind them to `ctx` (once)."""
        from comfydesk.ui.gateway_ui import GatewayUi
        from comfydesk.ui.settings_dialog import install_settings
        from comfydesk.ui.viewer_actions import install_gallery_actions
        from comfydesk.ui.window_menus import build_actions, build_menus

        if self.is_attached:
            raise RuntimeError("the window is bound to its app state already")
        self.ctx = ctx
        self._current: CurrentWorkflow | None = None
        self._last_seeds: dict[str, int] = {}
        self._profiles_dialog: ProfilesDialog | None = None
        self._focus_on_load: str | None = None  # a workflow chosen with Enter: focus its form once built

        build_actions(self)  # comfydesk.ui.window_menus: the actions and the menu bar
        self._build_centre()
        self._build_docks()
        build_menus(self)
        self._build_status_bar()
        self._wire()
        if self.isVisible():
            # On screen (the frame was shown first): lay the new panes out now, before the docks are sized;
            # otherwise the panes' size hints would win over the docks' sizes.
            QCoreApplication.sendPostedEvents()
        self._size_docks()  # again: the panes' own minimum sizes count now
        self._restore_layout()
        self._on_current(ctx.library.current)
        self.status_line.update_connection()
        self._update_run_enabled()
        self.gateway_ui: GatewayUi = GatewayUi(self, self.file_menu)
        # viewer, compare, actions on results
        self.gallery_actions: GalleryActionSet = install_gallery_actions(self, ctx)
        self.canvas.compare_requested.connect(self.gallery_actions.open_compare)
        self.settings_ui: SettingsUi = install_settings(self)  # File -> Settings…, View -> Theme; preferences
        self.is_attached = True
        self.attached.emit()

    # ------------------------------------------------------------------------------------------ building
    def _build_centre(self) -> None:
        from PySide6.QtWidgets import QStackedWidget

        from comfydesk.app.missing import MissingPiecesModel
        from comfydesk.ui.canvas import RunCanvas
        from comfydesk.ui.error_view import ErrorView
        from comfydesk.ui.first_run import FirstRunPanel
        from comfydesk.ui.form_panel import FormPanel
        from comfydesk.ui.results import ResultsStrip
        from comfydesk.ui.run_view import RunView
        from comfydesk.ui.window_menus import with_shortcut

        self.first_run: FirstRunPanel = FirstRunPanel()
        self.first_run.retry_requested.connect(self.ctx.retry)
        self.first_run.edit_address_requested.connect(lambda: self.edit_profile(None))
        self.first_run.start_demo_requested.connect(self.ctx.start_demo)

        # The form panel (docked in _build_docks): title, missing pieces, the form, the run bar at its foot.
        panel: FormPanel = FormPanel()
        self.form_panel = panel
        self.workflow_title, self.workflow_description = panel.workflow_title, panel.workflow_description
        self.form_message, self.form, self.missing_panel = panel.form_message, panel.form, panel.missing_panel
        self.reset_button, self.run_button, self.batch = panel.reset_button, panel.run_button, panel.batch
        self.cancel_button, self.run_reason = panel.cancel_button, panel.run_reason
        self.reset_button.setToolTip(
            with_shortcut("Reset every field to the workflow's value", self.reset_action)
        )
        self.reset_button.clicked.connect(self._reset_form)
        self.run_button.setToolTip(with_shortcut("Queue the workflow with these values", self.run_action))
        self.run_button.clicked.connect(self.run_workflow)
        self.cancel_button.setToolTip(
            with_shortcut("Interrupt the running one and clear what this window queued", self.cancel_action)
        )
        self.cancel_button.clicked.connect(self.request_cancel)
        # What the workflow needs that the server lacks: the panel above the form, why Run is off beside it.
        self.missing: MissingPiecesModel = MissingPiecesModel(self.ctx.connection, self.ctx.catalog, self)
        self.missing_panel.field_requested.connect(lambda key: self.form.focus_field(key))
        self._missing_notes: dict[str, str] = {}
        self._switching = False

        # The centre: the canvas (progress bar at its foot, banners over its top), this workflow's recent
        # results under it. The canvas stretches; the strip keeps its height. The sizes are remembered.
        self.canvas: RunCanvas = RunCanvas()
        self.progress = self.canvas.progress
        self.error_view: ErrorView = ErrorView()
        self.error_view.setObjectName("appErrorView")  # the progress panel has its own, for failed runs
        self.error_view.hide()
        self.canvas.add_overlay(self.error_view)
        self.results: ResultsStrip = ResultsStrip(open_in_viewer=False, thumb=STRIP_THUMB)
        results_pane = QWidget()
        results_pane.setObjectName("resultsPane")
        results_layout = QVBoxLayout(results_pane)
        results_layout.setContentsMargins(4, 2, 4, 4)
        results_layout.addWidget(self.results)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("centreSplitter")
        for pane, stretch in ((self.canvas, 1), (results_pane, 0)):
            self.splitter.addWidget(pane)
            self.splitter.setStretchFactor(self.splitter.indexOf(pane), stretch)
        self.splitter.setChildrenCollapsible(False)
        self.run_view: RunView = RunView(
            run_state=self.ctx.run_state,
            controller=self.ctx.controller,
            canvas=self.canvas,
            strip=self.results,
            error_view=self.error_view,
            batch=self.batch,
            form=self.form,
            parent=self,
        )

        self.stack: QStackedWidget = QStackedWidget()
        self.stack.setObjectName("centralStack")
        self.stack.addWidget(self.splitter)
        self.stack.addWidget(self.first_run)
        # Explicit, as the canvas's: the first-run panel's wider minimum would not let the window fit a
        # small screen beside the library, form and gallery docks.
        self.stack.setMinimumSize(self.canvas.minimumSize())
        self.setCentralWidget(self.stack)

    def _build_docks(self) -> None:
        """The panes, into the frame's docks."""
        from comfydesk.ui.gallery import add_gallery_dock
        from comfydesk.ui.queue_view import QueueView
        from comfydesk.ui.server_log import add_server_log_dock
        from comfydesk.ui.window_menus import make_action, show_tab
        from comfydesk.ui.workflow_pane import WorkflowPane

        self.workflow_pane: WorkflowPane = WorkflowPane(self.ctx.library)
        self.workflow_pane.open_requested.connect(self.open_workflow)
        self.workflow_pane.activated.connect(self._on_workflow_activated)
        self.workflow_pane.add_context_actions([self.templates_action])
        if not self.lists_nodes:
            self.show_node_list(None)
        self.node_pane.bind(self.ctx.catalog)
        waiting = self.left_tabs.widget(0)  # the workflows pane's place, empty until now
        in_front = self.left_tabs.currentIndex()
        self.left_tabs.insertTab(0, self.workflow_pane, "&Workflows")
        self.left_tabs.removeTab(1)
        if waiting is not None:
            waiting.deleteLater()
        self.left_tabs.setCurrentIndex(in_front)
        self.queue_view: QueueView = QueueView(self.ctx.controller)
        set_dock_pane(self.queue_dock, self.queue_view)
        set_dock_pane(self.form_dock, self.form_panel)

        self.form_toggle = self.form_dock.toggleViewAction()
        self.form_toggle.setText("Show the &form")
        self.form_toggle.setShortcut(QKeySequence("Ctrl+Shift+F"))
        self.show_workflows_action = make_action(self, "&Workflows pane", lambda: show_tab(self, 0), "Ctrl+1")
        self.show_nodes_action = make_action(self, "&Nodes pane", lambda: show_tab(self, 1), "Ctrl+2")
        self.library_toggle = self.library_dock.toggleViewAction()
        self.library_toggle.setText("Show &library")
        self.library_toggle.setShortcut(QKeySequence("Ctrl+Shift+L"))
        self.queue_toggle = self.queue_dock.toggleViewAction()
        self.queue_toggle.setText("Show &queue")
        self.queue_toggle.setShortcut(QKeySequence("Ctrl+Shift+Q"))

        # Every output of every run (the journal), beside the form; the results strip stays for this session.
        add_gallery_dock(self, self.ctx.gallery, dock=self.gallery_dock)
        self.gallery_pane: GalleryPane = self.gallery_dock.widget()  # type: ignore[assignment]
        self.gallery: GalleryView = self.gallery_pane.view
        self.gallery_toggle = self.gallery_dock.toggleViewAction()

        # A ComfyUI installed on this computer, started by comfydesk: its log, live (hidden until used).
        assert self.ctx.local_server is not None
        add_server_log_dock(self, self.ctx.local_server, dock=self.server_log_dock)
        self.server_log: ServerLogPanel = self.server_log_dock.widget()  # type: ignore[assignment]

    def _build_status_bar(self) -> None:
        from comfydesk.ui.status_line import StatusLine

        self.statusBar().clearMessage()  # the frame's "Starting…"
        self.status_line: StatusLine = StatusLine(self.statusBar(), self.ctx.connection, self)
        self.connection_label = self.status_line.label
        self._show_message = self.status_line.show_message  # also for others (gallery actions' notes)

    # ------------------------------------------------------------------------------------------ wiring
    def _wire(self) -> None:
        from comfydesk.ui.form.image_wiring import bind_input_images

        ctx = self.ctx
        conn = ctx.connection
        conn.status_changed.connect(self._on_status)
        conn.server_info_changed.connect(lambda _i: self.status_line.update_connection())
        conn.queue_length_changed.connect(lambda _n: self.status_line.update_connection())
        conn.backend_changed.connect(lambda _b: self._update_run_enabled())
        ctx.library.current_changed.connect(self._on_current)
        ctx.library.current_changed.connect(self.run_view.on_current)  # canvas, banner, batch: its own
        ctx.catalog.catalog_changed.connect(lambda _c: self.form.drop_kept_forms())  # specs made anew
        ctx.library.message_changed.connect(self._show_message)
        ctx.controller.message_changed.connect(self._show_message)
        ctx.controller.issues_changed.connect(self.run_view.on_issues)  # on their fields, the rest: banner
        ctx.controller.busy_changed.connect(self.cancel_button.setEnabled)
        ctx.controller.busy_changed.connect(self.cancel_action.setEnabled)
        ctx.controller.last_seed_changed.connect(self._on_last_seed)
        ctx.controller.bind_form(self.form)
        ctx.run_state.node_changed.connect(lambda node_id, _t: self.form.highlight_node(node_id or None))
        ctx.errors.error_changed.connect(self.run_view.report)
        ctx.demo.starting_changed.connect(self._on_demo_starting)
        ctx.run_state.status_changed.connect(self.status_line.on_run_status)
        self.form.widgets_changed.connect(self._chain_form)
        self.form.values_changed.connect(self._on_values)
        self.form.values_changed.connect(self.missing.set_values)
        self.form.widgets_changed.connect(lambda: self.form.set_unavailable(self.missing.unavailable()))
        self.missing.pieces_changed.connect(lambda _p: None if self._switching else self._show_missing())
        self.form.prefs_changed.connect(self._on_prefs)
        self.form.reuse_seed_requested.connect(self._on_reuse_seed)
        self.input_images = bind_input_images(self.form, ctx, self)  # image previews, fresh image lists
        self.cancel_action.setEnabled(False)
        self._chain_form()
        self.run_view.on_current(ctx.library.current)

    # ------------------------------------------------------------------------------------------ slots
    def show_templates(self) -> TemplateBrowser:
        """The template browser (one per window, kept while the window lives)."""
        from comfydesk.ui.window_menus import show_templates

        return show_templates(self)

    def open_workflow(self) -> None:
        from comfydesk.ui.window_menus import open_workflow_dialog

        open_workflow_dialog(self)

    def run_workflow(self) -> None:
        if not self.run_button.isEnabled():
            return
        if self._current is not None:
            controls = {k: str(v) for k, v in self.form.seed_controls().items()}
            self.ctx.memory.remember(self._current.key, seed_controls=controls)
        self.ctx.controller.run(self.batch.value())

    def request_cancel(self) -> None:
        """Cancel (button, Esc): at once, or after a yes when the user asked to confirm (Settings)."""
        self.settings_ui.confirm_cancel(self.ctx.controller.cancel)

    def show_profiles(self) -> None:
        if self._profiles_dialog is None:
            from comfydesk.ui.profiles_dialog import ProfilesDialog

            self._profiles_dialog = ProfilesDialog(
                self.ctx.profiles, self.ctx.connection, on_connect=self.ctx.connect_profile, parent=self
            )
        self._profiles_dialog.open()

    def edit_profile(self, profile_id: str | None) -> None:
        """The profiles dialog on `profile_id` (None: the connection's profile), e.g. to fix its token."""
        self.show_profiles()
        profile = self.ctx.connection.profile
        assert self._profiles_dialog is not None
        self._profiles_dialog.select_profile(profile_id or (profile.id if profile is not None else None))

    def show_about(self) -> None:
        from comfydesk.ui.window_menus import show_about

        show_about(self)

    def _focus_form(self) -> None:
        """Focus the form's first field (Ctrl+E, Enter on a workflow)."""
        if not self.form.focus_first_field():
            first = next((w for w in self.form.tab_chain() if w.isVisibleTo(self.form)), None)
            if first is not None:  # every group is collapsed: its header
                first.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def _chain_form(self) -> None:
        """Search -> library -> the form's fields top to bottom -> Run, batch, Cancel; the form's widgets are
        new after each rebuild, so the chain is laid again (pairwise, as setTabOrder moves one widget)."""
        fields = [w for w in self.form.tab_chain() if w.focusPolicy() & Qt.FocusPolicy.TabFocus]
        pane = self.workflow_pane
        chain = [pane.search, pane.tree, *fields, self.run_button, self.batch, self.cancel_button]
        for first, second in itertools.pairwise(chain):
            QWidget.setTabOrder(first, second)

    def _on_workflow_activated(self, key: str) -> None:
        """Enter on a workflow: its form, then its first field (once the form is built, if it is loading)."""
        self._focus_on_load = key
        self._focus_loaded()

    def _focus_loaded(self) -> None:
        cur = self._current
        if cur is not None and cur.key == self._focus_on_load and self.form.spec() is cur.spec:
            self._focus_on_load = None
            self._focus_form()

    def _reset_form(self) -> None:
        self.form.reset_to_defaults()

    def _on_status(self, status: ConnectionStatus) -> None:
        from comfydesk.backends.base import ConnectionState

        self.status_line.on_status(status)
        if status.state is ConnectionState.DISCONNECTED and not self.ctx.demo.running:
            self.first_run.set_reason(status.reason)
            self.stack.setCurrentWidget(self.first_run)
        elif status.state is ConnectionState.CONNECTED:
            self.stack.setCurrentWidget(self.splitter)
        self._update_run_enabled()

    def _update_run_enabled(self) -> None:
        ready = (
            self._current is not None
            and self._current.spec is not None
            and self.ctx.connection.backend is not None
        )
        pieces = self.missing.pieces
        blocked = ready and pieces is not None and pieces.blocking
        ready = ready and not blocked
        self.run_reason.setText(f"Can't run: {pieces.summary()}." if blocked and pieces else "")
        self.run_reason.setVisible(blocked)
        self.run_button.setEnabled(ready)
        self.run_action.setEnabled(ready)
        has_form = self._current is not None and self._current.spec is not None
        self.reset_button.setEnabled(has_form)
        self.reset_action.setEnabled(has_form)

    def _on_demo_starting(self, starting: bool) -> None:
        self.first_run.set_demo_starting(starting)
        self.demo_action.setEnabled(not starting)
        self.status_line.on_demo_starting(starting)

    def _on_current(self, current: object) -> None:
        from comfydesk.app.library import CurrentWorkflow
        from comfydesk.core.templates import SeedControl

        self._current = current if isinstance(current, CurrentWorkflow) else None
        cur = self._current
        if cur is None:
            self.workflow_title.setText("<h3>No workflow</h3>")
            self.workflow_description.setText("")
            self.form_message.setText("Pick a workflow from the library on the left.")
            self.form_message.show()
            self.form.set_spec(None)
        else:
            self.workflow_title.setText(f"<h3>{html.escape(cur.entry.name)}</h3>")
            desc = cur.entry.description or (cur.workflow.description if cur.workflow else "")
            self.workflow_description.setText(desc)
            self.workflow_description.setVisible(bool(desc))
            # With a form, the missing-pieces panel says what the server lacks (the same problems, in full).
            problems = "" if cur.needs is not None else "\n".join(f"⚠ {p}" for p in cur.entry.problems)
            text = "\n".join(t for t in (cur.error, problems) if t)
            self.form_message.setText(text)
            self.form_message.setVisible(bool(text))
            if cur.spec is not None:
                prefs = self.ctx.memory.prefs(cur.key)
                self.form.set_spec(
                    cur.spec,
                    prefs.values,
                    pinned=prefs.pinned,
                    hidden=prefs.hidden,
                    collapsed=prefs.collapsed,
                    server_graph=cur.runs_on_server,
                )
                for key, control in prefs.seed_controls.items():
                    if control in SeedControl.__members__.values():
                        self.form.set_seed_control(key, SeedControl(control))
                if prefs.last_seed is not None:
                    for f in cur.spec.fields():
                        if f.kind.value == "seed":
                            self.form.set_last_seed(f.key, prefs.last_seed)
                            self._last_seeds[f.key] = prefs.last_seed
            else:
                self.form.set_spec(None)
        self._switching = True  # one panel update for the new workflow, not one per change of the model
        try:
            self.missing.set_current(cur, self.form.values())
        finally:
            self._switching = False
        self._show_missing()
        if self._focus_on_load is not None:
            self._focus_loaded()

    def _show_missing(self) -> None:
        """The missing pieces on screen: the panel, greyed fields, marks on fields set to something the
        server lacks (the form clears a mark once another value is picked), the Run button."""
        from comfydesk.core.errors import ValidationIssue

        self.missing_panel.set_pieces(self.missing.pieces, self.missing.field_key)
        self.form.set_unavailable(self.missing.unavailable())
        notes = self.missing.field_notes()
        if notes != self._missing_notes or any(k not in self.form.issues() for k in notes):
            kept = [
                ValidationIssue(node_id="", message=m, field_key=k)
                for k, messages in self.form.issues().items()
                if k not in notes and k not in self._missing_notes
                for m in messages
            ]
            marks = [ValidationIssue(node_id="", message=m, field_key=k) for k, m in notes.items()]
            if kept or marks:
                self.form.show_issues([*kept, *marks])
            elif self._missing_notes:
                self.form.clear_issues()
            self._missing_notes = notes
        self._update_run_enabled()

    def _on_values(self, values: dict[str, Any]) -> None:
        if self._current is not None:
            self.ctx.memory.remember(self._current.key, values=values)

    def _on_prefs(self, prefs: object) -> None:
        if self._current is not None and isinstance(prefs, dict):
            self.ctx.memory.remember(
                self._current.key,
                pinned=list(prefs.get("pinned", [])),
                hidden=list(prefs.get("hidden", [])),
                collapsed=list(prefs.get("collapsed", [])),
            )

    def _on_last_seed(self, key: str, seed: object) -> None:
        if isinstance(seed, int):
            self._last_seeds[key] = seed
            self.form.set_last_seed(key, seed)

    def _on_reuse_seed(self, key: str) -> None:
        if key in self._last_seeds:
            self.form.set_value(key, self._last_seeds[key])
            self.form.values_changed.emit(self.form.values())

    # ------------------------------------------------------------------------------------------ layout
    def _restore_layout(self) -> None:
        restore_layout(self, self.ctx.settings, self.splitter)  # the docks' sizes again, with their panes

    def save_layout(self) -> None:
        save_layout(self, self.ctx.settings, self.splitter)
        in_front = "nodes" if self.left_tabs.currentWidget() is self.node_pane else "workflows"
        self.ctx.settings.set(LIBRARY_TAB_KEY, in_front)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() is QEvent.Type.PaletteChange and self.is_attached:  # light <-> dark: accents follow
            self.status_line.update_connection()
            self.error_view.update_accents()
        super().changeEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.is_attached:  # closed while starting: nothing of the app state to save or close yet
            super().closeEvent(event)
            return
        self.save_layout()
        self.ctx.close()  # settings written now; the connection and the demo engine close in the background
        super().closeEvent(event)
