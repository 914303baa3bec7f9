"""Secrets: a token is in no log, exception, screenshot or journal (the test greps everything written while
the window publishes, runs and then has its token revoked on a real gateway); the keyring is used when it
works and a failing keyring loses nothing to disk; the 0600 file exists only with consent, whatever the
umask; TLS verification is on by default for every backend (a real TLS server with an unknown CA is refused).

The unit tests in `tests/unit/test_store.py` cover the secret store's basic round trips; these add the
whole-app grep and the failure modes."""

from __future__ import annotations

import logging
import os
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.errors
import pytest
import qasync
from keyring.backends import fail
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QLineEdit, QPlainTextEdit, QTextEdit
from pytestqt.qtbot import QtBot

from comfydesk.app.context import ProfilesModel, build_context, default_backend_factory, profile_for_url
from comfydesk.backends.comfyui import ComfyUIBackend
from comfydesk.backends.v1 import V1Backend
from comfydesk.core.errors import ComfyDeskError
from comfydesk.gateway.testing import RunningGateway, start_gateway
from comfydesk.gui import QUIET_LOGGERS, configure_logging
from comfydesk.store.profiles import Profile
from comfydesk.store.secrets import SecretStore
from comfydesk.testing import RunningFake
from comfydesk.ui.main_window import MainWindow
from comfydesk.ui.profiles_dialog import ProfilesDialog
from tests.gui.conftest import collect_on_ui_thread, qloop  # noqa: F401 - fixtures for the window test
from tests.gui.gateway_helpers import BLOG_POST_IMAGE, MemoryKeyring, memory_keyring, token_refused
from tests.gui.helpers import OpenWindow, pick, wait_connected, windows, write_workflow
from tests.gui.test_gateway import open_on_gateway, publish_blog_post_image
from tests.integration.test_backend_tls import Certs, certs, tls_fake  # noqa: F401 - fixtures

RUN_TIMEOUT = 30_000


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:  # noqa: F811
    yield from windows(qtbot)


@pytest.fixture
def ring(open_window: OpenWindow) -> Iterator[MemoryKeyring]:
    yield from memory_keyring()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    gw = start_gateway(data_dir=tmp_path / "gateway", demo_step_delay=0.001)
    yield gw
    gw.stop()


@pytest.fixture
def app_logging() -> Iterator[None]:
    """The app's own logging set-up at its most verbose (DEBUG for comfydesk; the HTTP and WebSocket
    libraries, which print request headers at DEBUG, at WARNING as the app always sets them)."""
    names = ("comfydesk", *QUIET_LOGGERS)
    levels = {name: logging.getLogger(name).level for name in names}
    configure_logging(logging.DEBUG)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _visible_texts(app: QApplication) -> list[str]:
    """Every text a screenshot of any window could show (labels, buttons, fields that echo, tooltips)."""
    texts: list[str] = []
    for widget in app.allWidgets():
        texts += [widget.windowTitle(), widget.toolTip(), widget.statusTip(), widget.accessibleName()]
        if isinstance(widget, QLabel | QAbstractButton):
            texts.append(widget.text())
        elif isinstance(widget, QLineEdit):
            if widget.echoMode() == QLineEdit.EchoMode.Normal:
                texts.append(widget.text())
            texts.append(widget.placeholderText())
        elif isinstance(widget, QTextEdit | QPlainTextEdit):
            texts.append(widget.toPlainText())
    return texts


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_a_token_is_in_no_log_file_journal_exception_or_screen(
    qtbot: QtBot,
    open_window: OpenWindow,
    ring: MemoryKeyring,
    gateway: RunningGateway,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    app_logging: None,
) -> None:
    caplog.set_level(logging.DEBUG)  # every record of every logger that the app lets through
    token = gateway.create_token("ann")
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Blog Post Image", BLOG_POST_IMAGE)
    window = open_on_gateway(qtbot, open_window, ring, gateway, data_dir, token)
    assert isinstance(window, MainWindow)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    publish_blog_post_image(qtbot, window)
    window.form.set_value("prompt", "A beautiful landscape")
    window.form.set_value("negative_prompt", "ugly, blurry")
    qtbot.waitUntil(window.run_button.isEnabled, timeout=5_000)
    window.run_button.click()
    qtbot.waitUntil(lambda: window.results.count() == 1, timeout=RUN_TIMEOUT)
    # The token is revoked: the window says so (an error, with its exception) without showing it.
    assert gateway.revoke_token("ann")
    qtbot.waitUntil(lambda: token_refused(gateway.url, token), timeout=10_000)
    window.ctx.library.refresh_server()
    qtbot.waitUntil(lambda: window.error_view.isVisible(), timeout=10_000)
    window.show_profiles()
    dialog = window.findChild(ProfilesDialog, "profilesDialog")
    assert isinstance(dialog, ProfilesDialog) and dialog.isVisible()
    assert dialog.secret.echoMode() != QLineEdit.EchoMode.Normal
    shot = tmp_path / "app" / "screenshot.png"
    window.grab().save(str(shot))
    dialog.grab().save(str(tmp_path / "app" / "dialog.png"))
    texts = _visible_texts(QApplication.instance())  # type: ignore[arg-type]
    dialog.reject()
    window.close()
    qtbot.waitUntil(lambda: window.ctx.tasks.pending == 0, timeout=10_000)
    qtbot.waitUntil(lambda: window.ctx.closed, timeout=10_000)

    # Everything written: the app's data dir (journal, blobs, results, settings, profiles, caches,
    # screenshots) and the gateway's (its database keeps a hash).
    assert ring.values  # the keyring has it: that is where it belongs
    assert (data_dir / "journal.sqlite3").exists() or list(data_dir.rglob("*.sqlite3"))
    assert _files_containing(tmp_path, token.encode()) == []
    assert not any(token in t for t in texts)
    errors = [r for r in caplog.records if r.exc_info]
    reported = window.ctx.errors.history  # what the error bar showed and "copy details" would copy
    assert reported and any("rejected" in e.message for e in reported)
    for error in reported:
        assert token not in f"{error.message} {error.hint} {error.details} {error.what}"
    assert any(r.name.startswith("comfydesk") for r in caplog.records)
    logged = "\n".join(
        r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
        for r in caplog.records
    )
    assert token not in logged, [r.name for r in caplog.records if token in r.getMessage()]
    for record in errors:
        assert record.exc_info is not None
        exc = record.exc_info[1]
        while exc is not None:
            assert token not in str(exc) and token not in repr(exc.args)
            exc = exc.__cause__ or exc.__context__
    message = window.error_view.message.text()
    assert "rejected" in message and token not in message


class BrokenKeyring(MemoryKeyring):
    """A keyring that says it works, then refuses to store (a locked or broken Secret Service)."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError(f"refused to store {password}")


@pytest.fixture
def broken_keyring() -> Iterator[BrokenKeyring]:
    old = keyring.get_keyring()
    ring = BrokenKeyring()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(old)


def test_the_keyring_is_used_when_it_works(tmp_path: Path) -> None:
    old = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    try:
        store = SecretStore(tmp_path / "secrets.json", use_file=True)  # consent given: still the keyring
        model_profile = Profile(id="p", name="p", kind="v1-gateway", url="https://gw.example", auth="token")
        store.set(model_profile.secret_key, "cdk_in-the-keyring")
        assert ring.values[("comfydesk", "profile:p")] == "cdk_in-the-keyring"
        assert store.persistent and not store.uses_file and "keyring" in store.description
        assert not (tmp_path / "secrets.json").exists()
    finally:
        keyring.set_keyring(old)


def test_a_keyring_that_refuses_keeps_the_token_for_the_session_and_never_logs_it(
    tmp_path: Path, broken_keyring: BrokenKeyring, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = SecretStore(tmp_path / "secrets.json")
    store.set("profile:p", "cdk_do-not-show-me")
    assert store.get("profile:p") == "cdk_do-not-show-me"  # this session still works
    assert not store.persistent and "session only" in store.description
    assert not (tmp_path / "secrets.json").exists()  # no file without consent
    assert any("keyring write failed for profile:p" in r.getMessage() for r in caplog.records)
    assert all("cdk_do-not-show-me" not in r.getMessage() for r in caplog.records)


def test_the_file_fallback_needs_consent_and_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old_ring = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())  # type: ignore[no-untyped-call]
    old_umask = os.umask(0)  # the worst case: every file would be world-readable and writable
    try:
        ctx_dir = tmp_path / "app"
        ctx = build_context(data_dir=ctx_dir)
        try:
            profiles: ProfilesModel = ctx.profiles
            profile = Profile(id="g", name="g", kind="v1-gateway", url="https://gw.example", auth="token")
            profiles.save(profile, "cdk_secret-one")
            secrets_file = ctx.paths.secrets_file
            assert not secrets_file.exists()  # no consent yet: session only
            assert profiles.secret(profile) == "cdk_secret-one"
            profiles.use_secret_file(True)  # the user ticks "keep tokens in a file"
            assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
            assert ctx.settings.secrets_in_file
            profiles.save(profile, "cdk_secret-two")  # rewritten (atomically): still 0600
            assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
            assert [p.name for p in secrets_file.parent.iterdir() if p.name.startswith(".")] == []
            secrets_file.chmod(0o644)  # someone loosened it: the next write makes it private again
            profiles.save(profile, "cdk_secret-three")
            assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
            profiles.use_secret_file(False)  # consent withdrawn: the file goes
            assert not secrets_file.exists()
            assert profiles.secret(profile) == "cdk_secret-three"
        finally:
            ctx.settings.close()
            ctx.journal.close(wait=True)
    finally:
        os.umask(old_umask)
        keyring.set_keyring(old_ring)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"cdk_secret" not in path.read_bytes(), path


def _verifies(context: ssl.SSLContext) -> bool:
    return context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_tls_verification_is_on_by_default() -> None:
    profile = Profile(id="g", name="g", kind="v1-gateway", url="https://gw.example", auth="token")
    assert profile.verify_tls and Profile.from_json({"id": "x"}) is not None
    assert Profile.from_json({"id": "x"}).verify_tls  # type: ignore[union-attr]
    assert profile_for_url("https://comfy.example:8188").verify_tls
    gateway_backend = default_backend_factory(profile, "cdk_x")
    comfy_backend = default_backend_factory(profile.with_changes(kind="comfyui-remote"), "t")
    assert isinstance(gateway_backend, V1Backend) and isinstance(comfy_backend, ComfyUIBackend)
    for backend in (
        gateway_backend,
        comfy_backend,
        V1Backend("https://h", token="t"),
        ComfyUIBackend("https://h"),
    ):
        transport: Any = backend._transport  # what both HTTP and the WebSocket connect with
        context = getattr(transport, "config", transport).ssl_context
        assert isinstance(context, ssl.SSLContext), type(backend).__name__
        assert _verifies(context), type(backend).__name__


async def test_a_gateway_with_an_unknown_ca_is_refused_without_showing_the_token(
    tls_fake: RunningFake,  # noqa: F811
) -> None:
    backend = V1Backend(tls_fake.url, token="cdk_never-shown", timeout=5)
    try:
        with pytest.raises(ComfyDeskError) as info:
            await backend.connect()
    finally:
        await backend.close()
    text = f"{info.value} {info.value.user_text()} {info.value!r}"
    assert "could not be verified" in text
    assert "cdk_never-shown" not in text
