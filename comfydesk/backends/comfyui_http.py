"""HTTP plumbing for the ComfyUI backend: server addresses, credentials, TLS, and transport errors.

Every transport failure leaves here as a typed error whose text names the server by its *display* URL:
scheme, host, port and path prefix, never user info, query strings or tokens. Its cause reads like a
sentence (`describe_transport_error`): "connection refused (is ComfyUI running there?)", "host not found",
"no answer within 30 s", "the server's TLS certificate could not be verified ...", never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import logging
import re
import socket
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from comfydesk.backends.error_text import is_html, quote_body
from comfydesk.core.errors import AuthenticationError, ServerResponseError, ServerUnreachable
from comfydesk.core.limits import CATALOG_MAX_CONTAINERS, JsonTooComplex, loads_bounded, printable

__all__ = [
    "BodyLimit",
    "InFlight",
    "RequestUnanswered",
    "ServerAddress",
    "TransportConfig",
    "auth_headers",
    "describe_transport_error",
    "json_body",
    "limit_for",
    "make_ssl_context",
    "scrub",
]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0

T = TypeVar("T")


class RequestUnanswered(ServerUnreachable):
    """The request may have reached the server but no whole answer came back (a timeout, a connection
    dropped after sending): what the server did with it is not known. A refused or failed connection,
    where nothing was sent, is a plain ServerUnreachable."""


def _unanswered(exc: ServerUnreachable) -> RequestUnanswered:
    return RequestUnanswered(exc.url, exc.cause)


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """A server URL split into what we show, what we call, and any credentials it carried."""

    display: str  # e.g. https://host/comfy (no credentials, no query)
    http_base: str  # with a trailing slash, for httpx base_url
    ws_base: str  # ws:// or wss:// twin of http_base
    userinfo: tuple[str, str] | None = None

    @property
    def secure(self) -> bool:
        """https/wss: spoken over TLS."""
        return self.http_base.startswith("https:")

    @classmethod
    def parse(cls, url: str) -> ServerAddress:
        raw = url.strip()
        if "://" not in raw:
            raw = "http://" + raw
        parsed = httpx.URL(raw)
        if parsed.scheme not in ("http", "https", "ws", "wss"):
            raise ValueError(f"unsupported URL scheme {parsed.scheme!r} (use http or https)")
        secure = parsed.scheme in ("https", "wss")
        userinfo = (parsed.username, parsed.password) if parsed.username else None
        clean = parsed.copy_with(
            scheme="https" if secure else "http", username=None, password=None, query=None, fragment=None
        )
        base = str(clean).rstrip("/")
        ws = ("wss" if secure else "ws") + base[base.index("://") :]
        return cls(display=base, http_base=base + "/", ws_base=ws + "/", userinfo=userinfo)


def make_ssl_context(*, ca_file: str | None, verify_tls: bool, secure: bool = True) -> ssl.SSLContext:
    """The TLS context for both HTTP and WebSocket: system trust, plus `ca_file`, or no checks when asked.

    For a plain `http://` server (`secure` False) no TLS is spoken, and reading the system's trust store
    (20-35 ms, on the way to the first connection) is skipped: the context trusts nothing, so any TLS it
    were ever led to fails verification rather than passing unchecked."""
    if not secure and not ca_file:
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificates and host names, trusts none
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    if not verify_tls and not ca_file:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc`, what caused it (`__cause__`, else `__context__`), and members of exception groups."""
    out: list[BaseException] = []
    todo = [exc]
    while todo and len(out) < 50:
        current: BaseException | None = todo.pop(0)
        while current is not None and all(current is not seen for seen in out):
            out.append(current)
            if isinstance(current, BaseExceptionGroup):
                todo.extend(current.exceptions)
            current = current.__cause__ or current.__context__
    return out


def _refused(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionRefusedError):
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return True
    # asyncio joins the failures of several addresses (::1 and 127.0.0.1) into one OSError without errno.
    text = str(exc)
    if isinstance(exc, OSError) and text.startswith("Multiple exceptions: "):
        codes = re.findall(r"\[Errno (-?\d+)\]", text)
        return bool(codes) and all(int(code) == errno.ECONNREFUSED for code in codes)
    return False


def describe_transport_error(exc: BaseException, *, timeout: float) -> str:
    """The cause of a failed connection or request in a user's words (may still need `scrub`)."""
    chain = _chain(exc)
    for err in chain:
        if isinstance(err, ssl.SSLCertVerificationError):
            why = str(err.verify_message or err.reason or "unknown reason").rstrip(".")
            if "mismatch" in why.lower():
                return (
                    f"the server's TLS certificate is not valid for this address ({why}); connect with the "
                    "host name or IP address the certificate was issued for"
                )
            return (
                f"the server's TLS certificate could not be verified ({why}); if the server uses its own "
                "certificate authority, set that CA certificate as the CA file of the connection profile"
            )
    for err in chain:
        if isinstance(err, ssl.SSLError):
            why = err.reason or str(err)
            return f"the TLS handshake failed ({why.lower().replace('_', ' ')}; does the server speak https?)"
    if any(isinstance(err, socket.gaierror) for err in chain):
        return "host not found"
    if any(_refused(err) for err in chain):
        return "connection refused (is ComfyUI running there?)"
    if any(isinstance(err, httpx.TimeoutException | TimeoutError) for err in chain):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" in str(exc):
        return "the server hung up without answering (if it speaks https, use an https:// address)"
    if any(isinstance(err, ConnectionResetError) for err in chain):
        return "the connection was reset by the server"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def auth_headers(token: str | None, basic_auth: tuple[str, str] | None) -> dict[str, str]:
    """The Authorization header for HTTP and the WebSocket handshake (a token wins over basic auth)."""
    if token:
        return {"Authorization": f"Bearer {token}"}
    if basic_auth:
        user, password = basic_auth
        raw = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {raw}"}
    return {}


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Remove secrets from text that may reach a log or an exception message."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


class InFlight:
    """The requests under way on one connection's HTTP clients, each on its own task.

    Closing an httpx client closes the connections its pool holds, not one still being opened for a request
    under way: that socket would stay open, owned by no one. So a backend ends its requests first
    (`end_all`): each is cancelled and its caller gets ServerUnreachable("the connection was closed").
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ended: set[asyncio.Task[Any]] = set()

    @property
    def count(self) -> int:
        return len(self._tasks)

    async def run(self, coro: Coroutine[Any, Any, T], server: str) -> T:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            return await task  # a cancelled caller cancels the request with it
        except asyncio.CancelledError:
            caller = asyncio.current_task()
            if task in self._ended and (caller is None or not caller.cancelling()):
                raise ServerUnreachable(server, "the connection was closed") from None
            raise
        finally:
            self._ended.discard(task)

    async def end_all(self) -> None:
        """Cancel every request under way and wait until each has let go of its socket."""
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            self._ended.add(task)
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)


@dataclass(frozen=True, slots=True)
class TransportConfig:
    address: ServerAddress
    headers: dict[str, str]
    ssl_context: ssl.SSLContext
    timeout: float
    secrets: tuple[str, ...]
    in_flight: InFlight = field(default_factory=InFlight, compare=False, repr=False)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.address.http_base,
            headers=self.headers,
            verify=self.ssl_context,
            # Only connecting has its own timeout; the rest of a request is bounded by `fetch`'s one budget
            # (httpx's per-read timeouts each left a timer in the Qt loop for `timeout` seconds: thousands
            # of them during a fast batch).
            timeout=httpx.Timeout(None, connect=self.connect_timeout),
            follow_redirects=False,
        )

    @property
    def connect_timeout(self) -> float:
        return min(CONNECT_TIMEOUT, self.timeout)

    def unreachable(
        self, exc: BaseException, what: str = "", *, connecting: bool = False
    ) -> ServerUnreachable:
        """ServerUnreachable with a readable cause; `connecting`: the connect timeout was the limit."""
        if any(isinstance(err, httpx.ConnectTimeout) for err in _chain(exc)):
            connecting = True
        timeout = self.connect_timeout if connecting else self.timeout
        cause = describe_transport_error(exc, timeout=timeout)
        if what and cause.startswith("no answer within"):
            cause += f" ({what})"
        return ServerUnreachable(self.address.display, printable(self.scrub(cause)))

    async def fetch(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        *,
        limit: BodyLimit | None = None,
        what: str = "",
        **kwargs: Any,
    ) -> httpx.Response:
        """One request whose answer is read whole, within the size and time limits of its route.

        Transport errors and an answer that is too slow -> ServerUnreachable; an answer larger than the
        route's limit -> ServerResponseError. The status is not checked here (see `request`). Runs as one
        of `in_flight`.
        """
        return await self.in_flight.run(
            self._fetch(client, method, path, limit=limit, what=what, **kwargs), self.address.display
        )

    async def _fetch(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        *,
        limit: BodyLimit | None,
        what: str,
        **kwargs: Any,
    ) -> httpx.Response:
        what = what or f"{method} {_route(path)}"
        limit = limit or limit_for(path)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        start_budget = self.timeout + _upload_size(kwargs) / MIN_RATE
        received = 0
        answered = False
        try:
            async with asyncio.timeout_at(t0 + start_budget) as budget:
                request = client.build_request(method, path.lstrip("/"), **kwargs)
                resp = await client.send(request, stream=True)
                answered = True
                try:
                    declared = resp.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > limit.max_bytes:
                        raise self._too_big(what, limit, int(declared))
                    chunks: list[bytes] = []
                    scheduled = t0 + start_budget
                    async for chunk in resp.aiter_bytes():
                        received += len(chunk)
                        if received > limit.max_bytes:
                            raise self._too_big(what, limit, None)
                        chunks.append(chunk)
                        allowed = min(limit.ceiling, self.timeout + received / MIN_RATE)
                        deadline = t0 + max(start_budget, allowed)
                        if loop.time() > deadline:  # a trickle: each chunk is checked against the rule
                            raise TimeoutError
                        if deadline > scheduled + self.timeout / 10:
                            # The timer (for a body that stops) moves in steps, not per chunk, and not for a
                            # small body (it may fire a tenth of the timeout early): each move leaves a timer
                            # handle in the Qt loop until its old time comes.
                            scheduled = max(deadline, min(t0 + limit.ceiling, deadline + self.timeout))
                            budget.reschedule(scheduled)
                finally:
                    await resp.aclose()
                    # httpx's response and its stream refer to each other: a cycle that only the cycle
                    # collector would free, with the request, its headers and the pool's objects in it.
                    resp.stream = httpx.ByteStream(b"")
        except TimeoutError:
            if not answered:  # not a word within the budget: said as a read timeout always was
                raise _unanswered(self.unreachable(httpx.ReadTimeout("timed out"), what)) from None
            elapsed = loop.time() - t0
            got = f"; it had sent {_size(received)}" if received else ""
            raise RequestUnanswered(
                self.address.display,
                f"the answer to {what} took too long ({elapsed:.0f} s{got}); the server may be overloaded "
                "or the connection too slow; try again later",
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # the request never left
            raise self.unreachable(exc, what) from None
        except httpx.TransportError as exc:  # it may have been sent: read or protocol errors
            raise _unanswered(self.unreachable(exc, what)) from None
        headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in _BODY_HEADERS]
        return httpx.Response(resp.status_code, headers=headers, content=b"".join(chunks), request=request)

    def _too_big(self, what: str, limit: BodyLimit, declared: int | None) -> ServerResponseError:
        said = f" (it announced {_size(declared)})" if declared is not None else ""
        return ServerResponseError(
            f"the answer to {what} is larger than the {_size(limit.max_bytes)} accepted{said}; "
            "it was not read. The server is misbehaving or is not a ComfyUI",
        )

    async def request(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (200,),
        **kwargs: Any,
    ) -> httpx.Response:
        """One request; transport errors -> ServerUnreachable, 401/403 -> AuthenticationError.

        Statuses outside `ok` (and not auth failures) raise ServerResponseError unless `ok` is empty,
        in which case the caller inspects the response. The answer is bounded (`fetch`).
        """
        what = f"{method} {_route(path)}"
        resp = await self.fetch(client, method, path, **kwargs)
        if resp.status_code in (401, 403):
            raise AuthenticationError(self.address.display, resp.status_code)
        if ok and resp.status_code not in ok:
            body = printable(self.scrub(resp.text[:2000]), keep_newlines=True)
            kind = resp.headers.get("content-type", "")
            said = quote_body(body, kind) if is_html(body, kind) else body[:200]  # a page by its title
            raise ServerResponseError(
                f"{what} answered HTTP {resp.status_code}" + (f": {said}" if body.strip() else ""),
                status=resp.status_code,
                body=body,
            )
        return resp

    def scrub(self, text: str) -> str:
        """`text` without this connection's secrets (token, password, and Basic auth as sent)."""
        return scrub(text, (*self.secrets, *_basic_forms(self.headers)))


_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """How large an answer may be, and the most time it may take however steadily it flows (s)."""

    max_bytes: int
    ceiling: float


MiB = 1024 * 1024
#: After the request timeout, an answer must keep arriving at this average rate (bytes/s) or it is dropped:
#: a body trickled byte by byte cannot hold a command past its timeout.
MIN_RATE = 64 * 1024
DOCUMENT_LIMIT = BodyLimit(64 * MiB, 600.0)
FILE_LIMIT = BodyLimit(2048 * MiB, 3600.0)
#: Per-route limits (paths without the /api prefix); everything else is a document (DOCUMENT_LIMIT).
ROUTE_LIMITS: dict[str, BodyLimit] = {
    "/object_info": BodyLimit(256 * MiB, 600.0),  # the node catalog: ~10 MB on a big install
    "/history": BodyLimit(256 * MiB, 600.0),
    "/view": FILE_LIMIT,  # output files: images and videos
}


def _route(path: str) -> str:
    return path.split("?")[0]


def limit_for(path: str) -> BodyLimit:
    """The size and time limit of the answer to `path` (`/api` mirror routes count as their twin)."""
    route = "/" + _route(path).lstrip("/")
    if route.startswith("/api/"):
        route = route[4:]
    for prefix, limit in ROUTE_LIMITS.items():
        if route == prefix or route.startswith(prefix + "/"):
            return limit
    return DOCUMENT_LIMIT


def _upload_size(kwargs: dict[str, Any]) -> int:
    size = 0
    files = kwargs.get("files")
    for item in files.values() if isinstance(files, dict) else ():
        if isinstance(item, tuple) and len(item) > 1 and isinstance(item[1], bytes | bytearray):
            size += len(item[1])
    content = kwargs.get("content")
    if isinstance(content, bytes | bytearray):
        size += len(content)
    return size


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MB" if n >= MiB else f"{n} bytes"


def _basic_forms(headers: dict[str, str]) -> tuple[str, ...]:
    auth = headers.get("Authorization", "")
    return (auth.split(" ", 1)[1],) if auth.startswith("Basic ") else ()


def json_body(resp: httpx.Response, what: str) -> Any:
    """The response parsed as JSON, or ServerResponseError naming the route."""
    try:
        return loads_bounded(resp.content, max_containers=CATALOG_MAX_CONTAINERS)
    except JsonTooComplex as exc:
        raise ServerResponseError(
            f"{what} answered a document that cannot be used: {exc}", status=resp.status_code
        ) from None
    except ValueError:
        raise ServerResponseError(
            f"{what} did not answer JSON (HTTP {resp.status_code})",
            status=resp.status_code,
            body=resp.text[:2000],
        ) from None
