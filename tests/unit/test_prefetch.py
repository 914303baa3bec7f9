"""Asking a ComfyUI on this computer for its node definitions before the connection exists
(`comfydesk.backends.prefetch`): the real fake ComfyUI over a real socket, and answers a server should not
give, each of which must end in "no catalog" (the connection then asks as always), never in an error."""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from comfydesk.backends.comfyui_documents import catalog_from_bytes
from comfydesk.backends.prefetch import MAX_BYTES, ObjectInfoPrefetch, prefetch_allowed
from comfydesk.core.nodes import NodeCatalog
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from tests.conftest import FIXTURES, load_json


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[RunningFake]:
    running = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info_with_api_nodes.json", data_dir=tmp_path / "fake")
    )
    yield running
    running.stop()


class OneAnswer:
    """A TCP server on 127.0.0.1 answering each connection with `answer` (raw bytes), then closing it
    (or keeping it open without a word more, `hang`)."""

    def __init__(self, answer: bytes, *, hang: bool = False) -> None:
        self.answer, self.hang = answer, hang
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            self.requests.append(data)
            conn.sendall(self.answer)
            if self.hang:
                self.stop.wait(10)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def http_answer(body: bytes, status: str = "200 OK", headers: str | None = None) -> bytes:
    if headers is None:
        headers = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return f"HTTP/1.1 {status}\r\n{headers}\r\n".encode("latin-1") + body


def fetched(url: str, timeout: float = 5.0) -> NodeCatalog | None:
    prefetch = ObjectInfoPrefetch(url, timeout=timeout)
    assert prefetch.wait(timeout + 5)
    return prefetch.catalog()


def test_the_fake_comfyuis_definitions_come_whole_and_equal_to_the_connections(fake: RunningFake) -> None:
    prefetch = ObjectInfoPrefetch(fake.url, hold=True)
    want = catalog_from_bytes(httpx.get(f"{fake.url}/api/object_info").content)  # as the connection reads it
    # Held: the answer is in, but not parsed until released (the window's frame comes first).
    assert not prefetch.wait(0.3) and prefetch.catalog() is None
    prefetch.release()
    assert prefetch.wait(10)
    catalog = prefetch.catalog()
    assert catalog is not None and list(catalog) == list(want)
    assert all(catalog[k] == want[k] for k in want)
    assert fake.faults.requests_to("/object_info") == 1
    assert len(want) == len(load_json("object_info_with_api_nodes.json"))


@pytest.mark.parametrize(
    ("url", "kind", "auth", "allowed"),
    [
        ("http://127.0.0.1:8188", "comfyui-local", "none", True),
        ("http://localhost:8188/", "comfyui-local", "none", True),
        ("http://[::1]:8188", "comfyui-remote", "none", True),
        ("127.0.0.1:8188", "comfyui-local", "none", True),
        ("http://127.5.6.7:8188", "comfyui-local", "none", True),
        ("http://127.0.0.999:8188", "comfyui-local", "none", False),
        ("http://127.example.com:8188", "comfyui-local", "none", False),
        ("http://127.0.0.1", "comfyui-local", "none", False),  # no port: not a ComfyUI of this computer
        ("https://127.0.0.1:8188", "comfyui-local", "none", False),  # TLS: the connection's settings
        ("http://192.168.1.20:8188", "comfyui-remote", "none", False),  # another computer
        ("http://127.0.0.1:8188", "comfyui-local", "token", False),  # signs in
        ("http://127.0.0.1:8188", "v1-gateway", "none", False),  # not ComfyUI's API
        ("http://127.0.0.1:8188", "comfyui-managed", "none", False),  # comfydesk starts it later
        ("http://user:pw@127.0.0.1:8188", "comfyui-local", "none", False),
        ("http://127.0.0.1:notaport", "comfyui-local", "none", False),
    ],
)
def test_only_a_comfyui_of_this_computer_without_sign_in_is_asked(
    url: str, kind: str, auth: str, allowed: bool
) -> None:
    assert prefetch_allowed(url, kind=kind, auth=auth) is allowed


def test_a_path_prefix_is_kept(tmp_path: Path) -> None:
    body = json.dumps(load_json("object_info_KSampler.json")).encode()
    server = OneAnswer(http_answer(body))
    try:
        catalog = fetched(server.url + "/comfy/")
        assert catalog is not None and list(catalog) == ["KSampler"]
        assert server.requests[0].startswith(b"GET /comfy/object_info HTTP/1.1\r\n")
    finally:
        server.close()


GOOD = json.dumps(load_json("object_info_KSampler.json")).encode()


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(http_answer(b'{"error": "boom"}', "500 Internal Server Error"), id="500"),
        pytest.param(http_answer(b"", "404 Not Found"), id="404"),
        pytest.param(
            http_answer(b"<html>Sign in</html>", headers="Content-Type: text/html\r\nContent-Length: 20\r\n"),
            id="html page",
        ),
        pytest.param(
            http_answer(b"5\r\n{}   \r\n0\r\n\r\n", headers="Transfer-Encoding: chunked\r\n"), id="chunked"
        ),
        pytest.param(
            http_answer(
                gzip.compress(GOOD),
                headers=f"Content-Encoding: gzip\r\nContent-Length: {len(gzip.compress(GOOD))}\r\n",
            ),
            id="gzip",
        ),
        pytest.param(http_answer(GOOD, headers="Content-Type: application/json\r\n"), id="no length"),
        pytest.param(
            http_answer(GOOD[:100], headers=f"Content-Length: {len(GOOD)}\r\n"), id="cut short then closed"
        ),
        pytest.param(http_answer(b'{"truncated": [1, 2'), id="not json"),
        pytest.param(http_answer(b"[1, 2, 3]"), id="json but no definitions"),
        pytest.param(http_answer(b"{}"), id="no nodes"),
        pytest.param(http_answer(b"", headers=f"Content-Length: {MAX_BYTES + 1}\r\n"), id="too big"),
        pytest.param(http_answer(b"", headers="Content-Length: -5\r\n"), id="negative length"),
        pytest.param(b"ICY 200 OK\r\n\r\n", id="not http"),
        pytest.param(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", id="broken header"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5", id="headers never end"),
        pytest.param(b"", id="closed at once"),
    ],
)
def test_answers_a_comfyui_does_not_give_mean_no_catalog(answer: bytes) -> None:
    server = OneAnswer(answer)
    try:
        assert fetched(server.url) is None
    finally:
        server.close()


def test_a_server_that_goes_quiet_is_given_up_at_the_timeout() -> None:
    server = OneAnswer(http_answer(GOOD[:100], headers=f"Content-Length: {len(GOOD)}\r\n"), hang=True)
    try:
        assert fetched(server.url, timeout=0.5) is None
    finally:
        server.close()


def test_no_server_at_all_means_no_catalog() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    assert fetched(f"http://127.0.0.1:{port}") is None
