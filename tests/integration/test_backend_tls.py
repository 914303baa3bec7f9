"""ComfyUIBackend over TLS against the fake ComfyUI: `ca_file`, `verify_tls`, and what the user reads.

A throwaway CA and a certificate for 127.0.0.1 (IP SAN) are made at test time with the `openssl` command line
in a temporary directory; nothing touches the system trust store.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from comfydesk.backends.base import BackendEvent, ConnectionChanged, ConnectionState, QueueChanged
from comfydesk.backends.comfyui import ComfyUIBackend
from comfydesk.backends.reconnect import ReconnectPolicy
from comfydesk.core.errors import ServerUnreachable
from comfydesk.core.events import TERMINAL_EVENTS, Completed, Progress, Queued
from comfydesk.core.graph import ApiGraph
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from tests.conftest import FIXTURES, load_json

TIMEOUT = 10.0
FAST = ReconnectPolicy(initial=0.02, factor=2, max_delay=0.2, jitter=0.1, max_attempts=3)


@dataclass(frozen=True)
class Certs:
    ca: Path  # the CA certificate a client trusts via `ca_file`
    cert: Path  # the server's certificate (CN and IP SAN 127.0.0.1), signed by the CA
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command line is not installed: cannot make a throwaway CA for the TLS tests")
    d = tmp_path_factory.mktemp("tls")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=comfydesk throwaway test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n",
        encoding="ascii",
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=d,
    )  # fmt: skip
    return Certs(ca=d / "ca.pem", cert=d / "server.pem", key=d / "server.key")


@pytest.fixture
def tls_fake(tmp_path: Path, certs: Certs) -> Iterator[RunningFake]:
    fake = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake"),
        ssl_certfile=certs.cert,
        ssl_keyfile=certs.key,
    )
    try:
        yield fake
    finally:
        fake.stop()


class Events:
    """A backend's event stream collected in the background; tests await conditions, never sleep."""

    def __init__(self, backend: ComfyUIBackend) -> None:
        self.items: list[BackendEvent] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._pump(backend))

    async def _pump(self, backend: ComfyUIBackend) -> None:
        async for event in backend.events():
            async with self._changed:
                self.items.append(event)
                self._changed.notify_all()

    async def wait(self, pred: type | tuple[type, ...], pid: str | None = None) -> BackendEvent:
        def match(e: BackendEvent) -> bool:
            return isinstance(e, pred) and (pid is None or getattr(e, "execution_id", None) == pid)

        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: any(match(e) for e in self.items))

        await asyncio.wait_for(until(), TIMEOUT)
        return next(e for e in self.items if match(e))

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
async def backends() -> AsyncIterator[list[ComfyUIBackend]]:
    made: list[ComfyUIBackend] = []
    yield made
    for backend in made:
        await backend.close()


def _slow(steps: int) -> ApiGraph:
    prompt = load_json("workflows/api/slow_steps.json")
    prompt["2"]["inputs"]["steps"] = steps
    return ApiGraph.from_prompt(prompt)


def _socket_is_tls(backend: ComfyUIBackend) -> bool:
    ws = backend._ws  # what the connection really runs over, not what the URL says
    return ws is not None and ws.transport.get_extra_info("ssl_object") is not None


async def test_ca_file_verifies_the_server_and_a_run_streams_over_wss(
    tls_fake: RunningFake, certs: Certs, backends: list[ComfyUIBackend]
) -> None:
    assert tls_fake.url.startswith("https://127.0.0.1:") and tls_fake.ws_url.startswith("wss://")
    backend = ComfyUIBackend(tls_fake.url, ca_file=str(certs.ca), reconnect=FAST, timeout=5)
    backends.append(backend)
    events = Events(backend)
    try:
        await backend.connect()  # the WebSocket verifies with the same context: only it knows the CA
        assert backend.url == tls_fake.url and backend.status.state is ConnectionState.CONNECTED
        assert _socket_is_tls(backend)
        assert (await backend.server_info()).version == "0.8.0"
        execution = await backend.submit(_slow(3))
        end = await events.wait(TERMINAL_EVENTS, execution.id)
        assert isinstance(end, Completed) and len(end.outputs) == 1
        mine = [e for e in events.items if getattr(e, "execution_id", None) == execution.id]
        assert isinstance(mine[0], Queued)
        assert [(e.value, e.max) for e in mine if isinstance(e, Progress)] == [(1, 3), (2, 3), (3, 3)]
        assert (await backend.fetch_output(end.outputs[0]))[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        await events.stop()


async def test_unknown_ca_is_unreachable_with_a_plain_reason(
    tls_fake: RunningFake, backends: list[ComfyUIBackend]
) -> None:
    backend = ComfyUIBackend(tls_fake.url, token="tok-secret-123", timeout=5)  # verification on, system CAs
    backends.append(backend)
    with pytest.raises(ServerUnreachable) as info:
        await backend.connect()
    err = info.value
    assert err.url == tls_fake.url
    assert err.cause.startswith("the server's TLS certificate could not be verified (")
    assert "CA file" in err.cause
    for text in (str(err), err.user_text(), backend.status.reason):
        assert "Traceback" not in text and "SSLCertVerificationError" not in text
        assert "tok-secret-123" not in text
    assert err.__cause__ is None and err.__suppress_context__  # no chained traceback to print either
    assert backend.status.state is ConnectionState.DISCONNECTED


async def test_verify_tls_off_connects_to_an_unknown_ca(
    tls_fake: RunningFake, backends: list[ComfyUIBackend]
) -> None:
    backend = ComfyUIBackend(tls_fake.url, verify_tls=False, reconnect=FAST, timeout=5)
    backends.append(backend)
    events = Events(backend)
    try:
        await backend.connect()
        assert _socket_is_tls(backend)
        await events.wait(QueueChanged)  # the status message arrived over wss
        assert (await backend.server_info()).kind == "comfyui"
        states = [e.status.state for e in events.items if isinstance(e, ConnectionChanged)]
        assert states[:2] == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]
    finally:
        await events.stop()


async def test_a_certificate_for_another_address_is_named_as_such(
    tls_fake: RunningFake, certs: Certs, backends: list[ComfyUIBackend]
) -> None:
    port = tls_fake.url.rsplit(":", 1)[1]
    backend = ComfyUIBackend(f"https://localhost:{port}", ca_file=str(certs.ca), timeout=5)
    backends.append(backend)
    with pytest.raises(ServerUnreachable) as info:
        await backend.connect()
    assert info.value.cause.startswith("the server's TLS certificate is not valid for this address (")
    assert "localhost" in info.value.cause


async def test_http_address_for_a_tls_server_suggests_https(
    tls_fake: RunningFake, backends: list[ComfyUIBackend]
) -> None:
    backend = ComfyUIBackend("http://" + tls_fake.url.split("://", 1)[1], timeout=5)
    backends.append(backend)
    with pytest.raises(ServerUnreachable) as info:
        await backend.connect()
    assert info.value.cause == (
        "the server hung up without answering (if it speaks https, use an https:// address)"
    )


def test_a_plain_http_server_gets_a_context_that_trusts_nothing() -> None:
    """http:// speaks no TLS: its context skips the system trust store (a cost on the way to the first
    connection) and still verifies, so TLS it were ever led to fails rather than passes unchecked."""
    from comfydesk.backends.comfyui_http import ServerAddress, make_ssl_context

    plain = make_ssl_context(ca_file=None, verify_tls=True, secure=False)
    assert plain.verify_mode is ssl.CERT_REQUIRED and plain.check_hostname
    assert plain.cert_store_stats()["x509_ca"] == 0
    secure = make_ssl_context(ca_file=None, verify_tls=True, secure=True)
    assert secure.verify_mode is ssl.CERT_REQUIRED and secure.check_hostname
    assert not ServerAddress.parse("http://h:8188").secure and ServerAddress.parse("https://h").secure
    assert ServerAddress.parse("wss://h/comfy").secure and not ServerAddress.parse("h:8188").secure
