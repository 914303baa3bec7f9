"""A server that refuses our credentials: the first-run panel says so in the catalogue's words, and points to
the profile, for a gateway (its token) and for a ComfyUI behind a password alike."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from pytestqt.qtbot import QtBot

from comfydesk.app.connection import TOKEN_REJECTED
from comfydesk.core.messages import CATALOGUE, SIGN_IN_REFUSED
from tests.gui.helpers import OpenWindow, windows
from tests.reliability.rawserver import answer, raw_server


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


async def _refuse(method: str, path: str, headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
    await answer(writer, b"401: Unauthorized", status=401)


def test_a_comfyui_refusing_the_password_says_so_in_plain_words(
    qtbot: QtBot, open_window: OpenWindow, tmp_path: Path
) -> None:
    with raw_server(_refuse) as url:
        window = open_window(server=url.replace("http://", "http://alice:wrong@"), data_dir=tmp_path)
        panel = window.first_run
        qtbot.waitUntil(lambda: window.stack.currentWidget() is panel, timeout=10_000)
        qtbot.waitUntil(lambda: SIGN_IN_REFUSED in panel.title.text(), timeout=10_000)
        assert TOKEN_REJECTED not in panel.title.text()
        assert panel.reason.text() == CATALOGUE["AuthenticationError"]  # not the gateway's "ask the admin"
        assert panel.edit_button.text() == "&Edit profile…"
        assert "wrong" not in panel.reason.text() + panel.title.text()
