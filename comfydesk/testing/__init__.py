"""A fake ComfyUI server built from real captures, for tests and the built-in demo engine (no Qt).

fake = start_fake_comfyui(FakeConfig(object_info=path, data_dir=tmp))
fake.url        # "http://127.0.0.1:<port>", the /ws socket at fake.ws_url
fake.faults     # inject trouble: drop_websocket_after, refuse_websockets, delay_route, fail_route, ...
fake.state      # queue, history, counters
fake.restart(); fake.stop()
"""

from comfydesk.testing.app import FakeConfig, create_app
from comfydesk.testing.faults import Faults
from comfydesk.testing.server import RunningFake, fake_comfyui, start_fake_comfyui
from comfydesk.testing.state import FakeState

__all__ = [
    "FakeConfig",
    "FakeState",
    "Faults",
    "RunningFake",
    "create_app",
    "fake_comfyui",
    "start_fake_comfyui",
]
