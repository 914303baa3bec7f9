"""Fixtures of the reliability suite: the fake ComfyUI over real sockets (with the captured node definitions,
which include the test nodes TestSlowSteps, TestFail and TestTextOutput)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from tests.conftest import FIXTURES


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[RunningFake]:
    running = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake")
    )
    try:
        yield running
    finally:
        running.stop()
