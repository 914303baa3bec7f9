"""Integration fixtures shared by every engineer: a real fake ComfyUI over real sockets.

`fake_comfyui` (function scope) starts `comfydesk.testing.start_fake_comfyui` on a free 127.0.0.1 port with
the captured `object_info.json` of the reference ComfyUI 0.8.0 server and a fresh `tmp_path` data dir, yields
the `RunningFake` (`.url`, `.ws_url`, `.faults`, `.state`, `.restart()`), and stops it afterwards. Test nodes
(TestSlowSteps, TestFail, TestTextOutput) and the image nodes run for real; TestSlowSteps sleeps at most
`step_delay` (0.01 s) per step.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from comfydesk.gateway.testing import RunningGateway, start_gateway
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from tests.conftest import FIXTURES
from tests.postgres import database_url, postgres  # noqa: F401 - fixtures: a PostgreSQL cluster, a database


@pytest.fixture
def fake_comfyui(tmp_path: Path) -> Iterator[RunningFake]:
    fake = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake")
    )
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    """`comfydesk serve` (on a thread, real sockets) in front of the fast demo engine; `.admin_token` is
    ready, `.create_token(name, admin=False)` makes more."""
    running = start_gateway(data_dir=tmp_path / "gateway")
    try:
        yield running
    finally:
        running.stop()
