"""The connection profiles dialog: add, edit, test and delete profiles; say where tokens are kept.

Kinds: local ComfyUI, remote ComfyUI (URL, token or basic auth, CA file), a comfydesk gateway speaking
/api/v1 (URL and token: a gateway always signs in by token, so the sign-in choice is fixed), and a ComfyUI
installed on this computer that comfydesk starts itself (its folder with main.py, the Python that runs
it, found in the folder's venv/.venv or the portable build's python_embeded or chosen by hand, extra
arguments). Without a system keyring the dialog says plainly that tokens last for this session only, and
offers the file readable only by the user. Opened window-modal with `open()`.

The dialog shows the profile actually in use, the one the connection talks to, at the top and selected:
a saved profile is marked "in use"; an address given on the command line (`--server`) or the demo engine
is not a saved profile, so it is listed first as "not saved" and Save keeps it as a new one.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from comfydesk.app.connection import GATEWAY_KIND, ConnectionModel, server_name
from comfydesk.app.context import ProfilesModel
from comfydesk.app.local_server import LocalServerConfig, LocalServerError, detect_python, free_port
from comfydesk.app.tasks import AppError
from comfydesk.backends.base import ConnectionState, ServerInfo
from comfydesk.store.profiles import DEFAULT_LOCAL_URL, MANAGED_KIND, Profile

__all__ = ["ProfilesDialog"]


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


ID_ROLE = Qt.ItemDataRole.UserRole
KINDS = (
    ("comfyui-local", "Local ComfyUI"),
    ("comfyui-remote", "Remote ComfyUI"),
    (GATEWAY_KIND, "/api/v1 gateway (comfydesk serve)"),
    (MANAGED_KIND, "ComfyUI installed on this computer"),
)
AUTHS = (("none", "No sign-in"), ("token", "Token"), ("basic", "User name and password"))


class ProfilesDialog(QDialog):
    """Edits `ProfilesModel`; "Connect" asks the window to switch to the selected profile."""

    def __init__(
        self,
        profiles: ProfilesModel,
        connection: ConnectionModel,
        *,
        on_connect: object = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("profilesDialog")
        self.setWindowTitle("Connection profiles")
        self._profiles = profiles
        self._connection = connection
        self._on_connect = on_connect
        self._editing: Profile | None = None
        self._unsaved: Profile | None = None  # the profile in use when it is not a saved one

        self.in_use = QLabel()
        self.in_use.setObjectName("inUseLabel")
        self.in_use.setWordWrap(True)
        self.in_use.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.list = QListWidget()
        self.list.setObjectName("profileList")
        self.list.setAccessibleName("Profiles")
        self.list.currentItemChanged.connect(self._on_select)
        add = QPushButton("&Add")
        add.setObjectName("addProfileButton")
        add.clicked.connect(self.add_profile)
        self.delete_button = QPushButton("&Delete")
        self.delete_button.setObjectName("deleteProfileButton")
        self.delete_button.clicked.connect(self.delete_profile)
        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(self.delete_button)
        left.addLayout(row)

        self.name = QLineEdit()
        self.name.setObjectName("profileName")
        self.kind = QComboBox()
        self.kind.setObjectName("profileKind")
        for value, label in KINDS:
            self.kind.addItem(label, value)
        gateway_tip = "A comfydesk gateway: a shared workflow library, signed in by token"
        self.kind.setItemData(2, gateway_tip, Qt.ItemDataRole.ToolTipRole)
        self.url = QLineEdit()
        self.url.setObjectName("profileUrl")
        self.url.setPlaceholderText(DEFAULT_LOCAL_URL)
        self.auth = QComboBox()
        self.auth.setObjectName("profileAuth")
        for value, label in AUTHS:
            self.auth.addItem(label, value)
        self.auth.currentIndexChanged.connect(self._update_fields)
        self.kind.currentIndexChanged.connect(self._update_fields)
        self.username = QLineEdit()
        self.username.setObjectName("profileUsername")
        self.secret = QLineEdit()
        self.secret.setObjectName("profileSecret")
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret.setPlaceholderText("unchanged")
        self.ca_file = QLineEdit()
        self.ca_file.setObjectName("profileCaFile")
        self.ca_file.setPlaceholderText("system certificates")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_ca)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_file, 1)
        ca_row.addWidget(browse)
        self.verify_tls = QCheckBox("Verify the server's TLS certificate")
        self.verify_tls.setObjectName("profileVerifyTls")
        # A ComfyUI installed on this computer: comfydesk starts it.
        self.comfyui_dir = QLineEdit()
        self.comfyui_dir.setObjectName("profileComfyuiDir")
        self.comfyui_dir.setPlaceholderText("the ComfyUI folder, with main.py in it")
        self.comfyui_dir.textChanged.connect(lambda _t: self._update_python_note())
        browse_dir = QPushButton("Browse…")
        browse_dir.setObjectName("browseComfyuiDir")
        browse_dir.clicked.connect(self._browse_comfyui)
        dir_row = QHBoxLayout()
        dir_row.addWidget(self.comfyui_dir, 1)
        dir_row.addWidget(browse_dir)
        self.python = QLineEdit()
        self.python.setObjectName("profilePython")
        self.python.textChanged.connect(lambda _t: self._update_python_note())
        browse_python = QPushButton("Browse…")
        browse_python.clicked.connect(self._browse_python)
        python_row = QHBoxLayout()
        python_row.addWidget(self.python, 1)
        python_row.addWidget(browse_python)
        self.python_note = QLabel()
        self.python_note.setObjectName("pythonNote")
        self.python_note.setWordWrap(True)
        self.extra_args = QLineEdit()
        self.extra_args.setObjectName("profileExtraArgs")
        self.extra_args.setPlaceholderText("e.g. --lowvram --preview-method auto")

        form = QFormLayout()
        form.addRow("&Name", self.name)
        form.addRow("&Kind", self.kind)
        form.addRow("&Address", self.url)
        form.addRow("&Sign-in", self.auth)
        form.addRow("&User name", self.username)
        form.addRow("&Token / password", self.secret)
        ca_label = QLabel("&CA file")
        ca_label.setBuddy(self.ca_file)
        form.addRow(ca_label, ca_row)
        form.addRow("", self.verify_tls)
        dir_label = QLabel("ComfyUI &folder")
        dir_label.setBuddy(self.comfyui_dir)
        form.addRow(dir_label, dir_row)
        python_label = QLabel("&Python")
        python_label.setBuddy(self.python)
        form.addRow(python_label, python_row)
        form.addRow("", self.python_note)
        form.addRow("E&xtra arguments", self.extra_args)
        self._form = form
        self._remote_rows: list[QWidget | QLayout] = [
            self.url,
            self.auth,
            self.username,
            self.secret,
            ca_row,
            self.verify_tls,
        ]
        self._managed_rows: list[QWidget | QLayout] = [dir_row, python_row, self.python_note, self.extra_args]

        self.secret_note = QLabel()
        self.secret_note.setObjectName("secretStorageNote")
        self.secret_note.setWordWrap(True)
        self.secret_file = QCheckBox("Keep tokens in a file only I can read (instead of this session only)")
        self.secret_file.setObjectName("secretFileOption")
        self.secret_file.toggled.connect(self._toggle_secret_file)

        self.test_button = QPushButton("&Test")
        self.test_button.setObjectName("testProfileButton")
        self.test_button.clicked.connect(self.test_profile)
        self.test_result = QLabel()
        self.test_result.setObjectName("testResult")
        self.test_result.setWordWrap(True)
        self.save_button = QPushButton("Sa&ve")
        self.save_button.setObjectName("saveProfileButton")
        self.save_button.clicked.connect(self.save_profile)
        self.connect_button = QPushButton("&Connect")
        self.connect_button.setObjectName("connectProfileButton")
        self.connect_button.clicked.connect(self.connect_profile)
        actions = QHBoxLayout()
        actions.addWidget(self.test_button)
        actions.addWidget(self.save_button)
        actions.addWidget(self.connect_button)
        actions.addStretch(1)

        right = QVBoxLayout()
        right.addLayout(form)
        right.addWidget(self.secret_note)
        right.addWidget(self.secret_file)
        right.addLayout(actions)
        right.addWidget(self.test_result)
        right.addStretch(1)

        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        body = QHBoxLayout()
        body.addLayout(left, 2)
        body.addLayout(right, 5)
        outer = QVBoxLayout(self)
        outer.addWidget(self.in_use)
        outer.addLayout(body)
        outer.addWidget(close)
        self.resize(760, 420)

        profiles.profiles_changed.connect(lambda _p: self._fill_list())
        connection.profile_tested.connect(self._on_tested)
        connection.profile_changed.connect(lambda _p: self._fill_list())
        connection.status_changed.connect(lambda _s: self._update_in_use())
        self._update_secret_note()
        self._fill_list(select=self.in_use_id())

    # -- the profile in use ------------------------------------------------------------------------
    def in_use_profile(self) -> Profile | None:
        """The saved profile the connection uses (by id, else by address), or its own unsaved one."""
        current = self._connection.profile
        if current is None:
            return None
        saved = self._profiles.profiles()
        by_id = next((p for p in saved if p.id == current.id), None)
        if by_id is not None:
            return by_id
        wanted = current.url.rstrip("/")
        by_url = next((p for p in saved if p.url.rstrip("/") == wanted and p.kind == current.kind), None)
        return by_url or current

    def in_use_id(self) -> str | None:
        profile = self.in_use_profile()
        return profile.id if profile is not None else None

    def _update_in_use(self) -> None:
        profile = self.in_use_profile()
        if profile is None:
            self.in_use.setText("Not connected to a server yet.")
            return
        state = self._connection.status.state
        how = {
            ConnectionState.CONNECTED: "connected",
            ConnectionState.CONNECTING: "connecting",
            ConnectionState.RECONNECTING: "reconnecting",
        }.get(state, "not connected")
        name = "" if profile.name == profile.host_port else f"<b>{_esc(profile.name)}</b> at "
        saved = " Not saved as a profile: Save keeps it." if profile is self._unsaved else ""
        self.in_use.setText(f"In use now: {name}{_esc(profile.url)} ({how}).{saved}")

    def showEvent(self, event: QShowEvent) -> None:
        """Opened again later: the profile in use may have changed (demo engine, another profile)."""
        self._fill_list(select=self.in_use_id())
        super().showEvent(event)

    # -- list --------------------------------------------------------------------------------------
    def _fill_list(self, select: str | None = None) -> None:
        wanted = select or (self._editing.id if self._editing else None)
        in_use = self.in_use_profile()
        saved = self._profiles.profiles()
        self._unsaved = in_use if in_use is not None and all(p.id != in_use.id for p in saved) else None
        self.list.blockSignals(True)
        self.list.clear()
        listed = [self._unsaved, *saved] if self._unsaved is not None else saved
        for profile in listed:
            assert profile is not None
            label = profile.name
            if in_use is not None and profile.id == in_use.id:
                label = f"{profile.name} (in use)"
            item = QListWidgetItem(label)
            item.setData(ID_ROLE, profile.id)
            item.setToolTip(profile.url)
            if profile is self._unsaved:
                item.setToolTip(f"{profile.url}\nNot saved as a profile: Save keeps it")
            if in_use is not None and profile.id == in_use.id:
                font = item.font()
                font.setBold(True)
                font.setItalic(profile is self._unsaved)
                item.setFont(font)
            self.list.addItem(item)
        self.list.blockSignals(False)
        rows = [self.list.item(i) for i in range(self.list.count())]
        target = next((r for r in rows if r is not None and r.data(ID_ROLE) == wanted), None)
        self.list.setCurrentItem(target or self.list.item(0))
        self._update_in_use()

    def select_profile(self, profile_id: str | None) -> None:
        """Show `profile_id` in the editor (the window opens the dialog on the profile that needs fixing)."""
        self._fill_list(select=profile_id)

    def _on_select(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        choices = [*self._profiles.profiles(), *([self._unsaved] if self._unsaved is not None else [])]
        profile = next((p for p in choices if current is not None and p.id == current.data(ID_ROLE)), None)
        if profile is not None:
            self.edit(profile)

    def edit(self, profile: Profile) -> None:
        self._editing = profile
        self.name.setText(profile.name)
        self.kind.setCurrentIndex(max(0, self.kind.findData(profile.kind)))
        self.url.setText(profile.url)
        self.auth.setCurrentIndex(max(0, self.auth.findData(profile.auth)))
        self.username.setText(profile.username)
        self.secret.clear()
        has_secret = bool(self._profiles.secret(profile))
        self.secret.setPlaceholderText("unchanged (stored)" if has_secret else "not set")
        self.ca_file.setText(profile.ca_file)
        self.verify_tls.setChecked(profile.verify_tls)
        self.comfyui_dir.setText(profile.comfyui_dir)
        self.python.setText(profile.python)
        self.extra_args.setText(profile.extra_args)
        self.test_result.clear()
        self._update_fields()

    def current_profile(self) -> Profile:
        """The profile as the fields describe it."""
        base = self._editing or Profile.new("New server")
        if self._is_managed():
            # Started on this computer only; the port is chosen once and kept (a server left running from
            # an earlier session is found there and used, never started twice).
            keep = base.kind == MANAGED_KIND and base.url.startswith("http://127.0.0.1:")
            return base.with_changes(
                name=self.name.text().strip() or "ComfyUI on this computer",
                kind=MANAGED_KIND,
                url=base.url if keep else f"http://127.0.0.1:{free_port()}",
                auth="none",
                username="",
                comfyui_dir=self.comfyui_dir.text().strip(),
                python=self.python.text().strip(),
                extra_args=self.extra_args.text().strip(),
            )
        return base.with_changes(
            name=self.name.text().strip() or self.url.text().strip() or "Server",
            kind=str(self.kind.currentData()),
            url=self.url.text().strip() or DEFAULT_LOCAL_URL,
            auth="token" if self._is_gateway() else str(self.auth.currentData()),
            username=self.username.text().strip(),
            ca_file=self.ca_file.text().strip(),
            verify_tls=self.verify_tls.isChecked(),
        )

    def _typed_secret(self) -> str | None:
        text = self.secret.text()
        return text if text else None

    # -- actions -----------------------------------------------------------------------------------
    def add_profile(self) -> None:
        profile = Profile.new("New server", kind="comfyui-remote", url="http://")
        self._profiles.save(profile)
        self._fill_list(select=profile.id)
        self.url.setFocus()
        self.url.selectAll()

    def delete_profile(self) -> None:
        if self._editing is not None:
            self._profiles.delete(self._editing.id)
            self._editing = None
            self._fill_list()

    def save_profile(self) -> Profile:
        profile = self.current_profile()
        if self._unsaved is not None and profile.id == self._unsaved.id:
            profile = profile.with_changes(id=Profile.new(profile.name).id)  # "cli"/"demo": a saved one now
        self._profiles.save(profile, self._typed_secret())
        self._editing = profile
        self.secret.clear()
        self._fill_list(select=profile.id)
        return profile

    def test_profile(self) -> None:
        profile = self.current_profile()
        if profile.kind == MANAGED_KIND:
            try:
                config = LocalServerConfig.from_strings(
                    profile.comfyui_dir, profile.python, profile.extra_args
                )
                config.check()
            except LocalServerError as exc:
                self.test_result.setText(f"✗ {exc.message[:1].upper()}{exc.message[1:]}. {exc.hint}")
            else:
                self.test_result.setText(f"✓ Ready to start: main.py found, Python {config.python}")
            return
        secret = self._typed_secret() or self._profiles.secret(profile)
        self.test_result.setText(f"Testing {profile.url}…")
        self._connection.test_profile(profile, secret)

    def connect_profile(self) -> None:
        profile = self.save_profile()
        if callable(self._on_connect):
            self._on_connect(profile)
        self.accept()

    def _on_tested(self, profile_id: str, result: object) -> None:
        if self._editing is None or profile_id != self._editing.id:
            return
        if isinstance(result, ServerInfo):
            self.test_result.setText(f"✓ {server_name(result)} {result.version} answered at {result.url}")
        elif isinstance(result, AppError):
            self.test_result.setText(f"✗ {result.message} {result.hint}".strip())

    # -- fields ------------------------------------------------------------------------------------
    def _is_gateway(self) -> bool:
        return str(self.kind.currentData()) == GATEWAY_KIND

    def _is_managed(self) -> bool:
        return str(self.kind.currentData()) == MANAGED_KIND

    def _update_fields(self) -> None:
        gateway = self._is_gateway()
        if gateway and self.auth.currentData() != "token":
            self.auth.blockSignals(True)
            self.auth.setCurrentIndex(self.auth.findData("token"))  # a gateway always takes a token
            self.auth.blockSignals(False)
        self.auth.setEnabled(not gateway)
        self.auth.setToolTip("A gateway signs in with a token" if gateway else "")
        auth = str(self.auth.currentData())
        remote = str(self.kind.currentData()) != "comfyui-local"
        self.username.setEnabled(auth == "basic")
        self.secret.setEnabled(auth != "none")
        self.ca_file.setEnabled(remote)
        self.verify_tls.setEnabled(remote)
        managed = self._is_managed()
        for row in self._remote_rows:
            self._set_row_visible(row, not managed)
        for row in self._managed_rows:
            self._set_row_visible(row, managed)
        self._update_python_note()

    def _set_row_visible(self, row: QWidget | QLayout, visible: bool) -> None:
        if isinstance(row, QLayout):
            self._form.setRowVisible(row, visible)
        else:
            self._form.setRowVisible(row, visible)

    def _update_python_note(self) -> None:
        if not self._is_managed():
            return
        folder = self.comfyui_dir.text().strip()
        if self.python.text().strip():
            self.python.setPlaceholderText("")
            self.python_note.setText("Chosen by you.")
            return
        found = detect_python(Path(folder).expanduser()) if folder else None
        self.python.setPlaceholderText(str(found) if found else "")
        if found is not None:
            self.python_note.setText("Found in the ComfyUI folder; choose another one to override it.")
        elif folder:
            self.python_note.setText(
                "No Python found in its venv, .venv or python_embeded folder: "
                "choose the one that runs ComfyUI."
            )
        else:
            self.python_note.setText(
                "Found in the ComfyUI folder (venv, .venv or python_embeded), or chosen here."
            )

    def _update_secret_note(self) -> None:
        secrets = self._profiles.secrets
        self.secret_note.setText(secrets.description)
        self.secret_file.setVisible(not secrets.keyring_available)
        self.secret_file.blockSignals(True)
        self.secret_file.setChecked(secrets.uses_file)
        self.secret_file.blockSignals(False)

    def _toggle_secret_file(self, enabled: bool) -> None:
        self._profiles.use_secret_file(enabled)
        self._update_secret_note()

    def _browse_comfyui(self) -> None:
        dialog = QFileDialog(self, "ComfyUI folder (with main.py)", self.comfyui_dir.text())
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.fileSelected.connect(self.comfyui_dir.setText)
        dialog.open()

    def _browse_python(self) -> None:
        dialog = QFileDialog(self, "The Python that runs ComfyUI", self.comfyui_dir.text())
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.fileSelected.connect(self.python.setText)
        dialog.open()

    def _browse_ca(self) -> None:
        dialog = QFileDialog(
            self, "CA certificate", self.ca_file.text(), "Certificates (*.pem *.crt);;All (*)"
        )
        dialog.fileSelected.connect(self.ca_file.setText)
        dialog.open()
