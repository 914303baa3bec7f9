"""HTTP plumbing for the ComfyUI backend: server addresses, credentials, TLS, and transport errors.

Every transport failure leaves here as a typed error whose text names the server by its *display* URL:
scheme, host, port and path prefix, never user info, query strings or tokens.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from comfydesk.core.errors import AuthenticationError, ServerResponseError, ServerUnreachable

__all__ = ["ServerAddress", "TransportConfig", "auth_headers", "json_body", "make_ssl_context", "scrub"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """A server URL split into what we show, what we call, and any credentials it carried."""

    display: str  # e.g. https://host/comfy (no credentials, no query)
    http_base: str  # with a trailing slash, for httpx base_url
    ws_base: str  # ws:// or wss:// twin of http_base
    userinfo: tuple[str, str] | None = None

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


def make_ssl_context(*, ca_file: str | None, verify_tls: bool) -> ssl.SSLContext:
    """The TLS context for both HTTP and WebSocket: system trust, plus `ca_file`, or no checks when asked."""
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    if not verify_tls and not ca_file:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


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


@dataclass(frozen=True, slots=True)
class TransportConfig:
    address: ServerAddress
    headers: dict[str, str]
    ssl_context: ssl.SSLContext
    timeout: float
    secrets: tuple[str, ...]

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.address.http_base,
            headers=self.headers,
            verify=self.ssl_context,
            timeout=httpx.Timeout(self.timeout, connect=min(CONNECT_TIMEOUT, self.timeout)),
            follow_redirects=False,
        )

    def unreachable(self, exc: BaseException, what: str = "") -> ServerUnreachable:
        if isinstance(exc, httpx.TimeoutException | TimeoutError):
            cause = f"no answer within {self.timeout:g} s" + (f" ({what})" if what else "")
        else:
            detail = str(exc) or type(exc).__name__
            cause = scrub(f"{type(exc).__name__}: {detail}", self.secrets)
        return ServerUnreachable(self.address.display, cause)

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
        in which case the caller inspects the response.
        """
        what = f"{method} {path.split('?')[0]}"
        try:
            resp = await client.request(method, path.lstrip("/"), **kwargs)
        except httpx.TransportError as exc:
            raise self.unreachable(exc, what) from None
        if resp.status_code in (401, 403):
            raise AuthenticationError(self.address.display, resp.status_code)
        if ok and resp.status_code not in ok:
            body = scrub(resp.text[:2000], self.secrets)
            raise ServerResponseError(
                f"{what} answered HTTP {resp.status_code}" + (f": {body[:200]}" if body.strip() else ""),
                status=resp.status_code,
                body=body,
            )
        return resp


def json_body(resp: httpx.Response, what: str) -> Any:
    """The response parsed as JSON, or ServerResponseError naming the route."""
    try:
        return json.loads(resp.content)
    except ValueError:
        raise ServerResponseError(
            f"{what} did not answer JSON (HTTP {resp.status_code})",
            status=resp.status_code,
            body=resp.text[:2000],
        ) from None
