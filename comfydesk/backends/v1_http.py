"""Requests and the progress socket of a `comfydesk serve` gateway, with its rate limit waited out.

Every answer leaves here as data or as a typed error (`v1_errors`); a 429 is waited out as its
`Retry-After` says (announced through `on_throttled`, so the window can show the wait), at most
`THROTTLE_RETRIES` times per request. The token is sent to the gateway only: a URL on another origin is
fetched without it, and error texts pass through `scrub`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from comfydesk.backends.base import Throttled
from comfydesk.backends.comfyui_http import (
    FILE_LIMIT,
    BodyLimit,
    ServerAddress,
    TransportConfig,
    auth_headers,
    make_ssl_context,
    scrub,
)
from comfydesk.backends.v1_errors import (
    API_PREFIX,
    BackendUnavailable,
    RateLimited,
    TokenRejected,
    data_of,
    error_from_response,
    is_gateway_envelope,
    retry_after_seconds,
)
from comfydesk.core.errors import OutputUnavailable, ServerUnreachable
from comfydesk.core.events import OutputRef

__all__ = ["THROTTLE_RETRIES", "GatewayTransport", "gateway_address", "probe_gateway"]

log = logging.getLogger(__name__)

THROTTLE_RETRIES = 3  # 429s waited out per request before giving up with RateLimited
_MAX_FRAME = 64 * 1024 * 1024  # previews arrive base64-encoded inside JSON


def gateway_address(url: str) -> ServerAddress:
    """The gateway's root, also when the address pasted ends in the API's own path (`.../api/v1/comfyui`)."""
    address = ServerAddress.parse(url)
    for suffix in (API_PREFIX, "/api/v1"):
        if address.display.endswith(suffix):
            return ServerAddress.parse(url.strip().split("?", 1)[0].rstrip("/")[: -len(suffix)])
    return address


class GatewayTransport:
    """HTTP client and socket opener for one gateway; `on_throttled` hears of every 429 wait."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        ca_file: str | None,
        verify_tls: bool,
        timeout: float,
        on_throttled: Callable[[Throttled], None],
    ) -> None:
        address = gateway_address(url)
        if address.userinfo:
            raise ValueError("a gateway takes a token, not a user name and password in the address")
        self.address = address
        self.url = address.display
        self.token_given = bool(token)
        self.config = TransportConfig(
            address=address,
            headers=auth_headers(token, None),
            ssl_context=make_ssl_context(ca_file=ca_file, verify_tls=verify_tls, secure=address.secure),
            timeout=timeout,
            secrets=(token,) if token else (),
        )
        self._on_throttled = on_throttled
        self._http: httpx.AsyncClient | None = None
        self._foreign: httpx.AsyncClient | None = None

    def scrub(self, text: str) -> str:
        return scrub(text, self.config.secrets)

    async def aclose(self) -> None:
        await self.config.in_flight.end_all()  # a connection still being opened would outlive its client
        for client in (self._http, self._foreign):
            if client is not None:
                await client.aclose()
        self._http = self._foreign = None

    def _client_for(self, url: str) -> httpx.AsyncClient:
        """Our client for our own server; a token-less one for a URL on another origin (never leak it)."""
        theirs, ours = urlsplit(url), urlsplit(self.url)
        if "://" not in url or (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc):
            if self._http is None:
                self._http = self.config.client()
            return self._http
        if self._foreign is None:
            self._foreign = httpx.AsyncClient(
                verify=self.config.ssl_context,
                timeout=httpx.Timeout(self.config.timeout, connect=self.config.connect_timeout),
                follow_redirects=False,
            )
        return self._foreign

    def _rate_limited(self, what: str) -> RateLimited:
        return RateLimited(
            f"the gateway at {self.url} is rate-limiting this token: {what} was refused "
            f"{THROTTLE_RETRIES + 1} times in a row",
            hint="Wait a minute and try again, or ask the gateway's admin for a higher limit.",
        )

    async def _wait(self, wait: float, what: str) -> None:
        log.info("%s: the gateway asked us to wait %.1f s (%s)", self.url, wait, what)
        self._on_throttled(Throttled(wait, what))
        await asyncio.sleep(wait)

    async def call(
        self,
        method: str,
        route: str,
        *,
        what: str,
        ok: tuple[int, ...] = (200,),
        api: bool = True,
        limit: BodyLimit | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request to `API_PREFIX + route` (or to `route` itself with `api=False`, absolute or not).

        Statuses in `ok` come back; 429 is waited out; transport failures raise ServerUnreachable, 401
        TokenRejected, anything else the error its envelope describes. `what` (a user's words: "reading the
        node list") names the request in messages and Throttled events."""
        target = API_PREFIX + route if api else route
        client = self._client_for(target)
        path = target if "://" in target else target.lstrip("/")
        for attempt in range(THROTTLE_RETRIES + 1):
            # Bounded in size and total time (`limit`, else by route); transport errors -> ServerUnreachable.
            resp = await self.config.fetch(client, method, path, limit=limit, what=what, **kwargs)
            if resp.status_code in ok:
                return resp
            if resp.status_code != 429:
                body = self.scrub(resp.text[:4000])
                raise error_from_response(
                    resp.status_code, body, url=self.url, what=what, token_given=self.token_given
                )
            if attempt < THROTTLE_RETRIES:
                await self._wait(retry_after_seconds(resp.headers), what)
        raise self._rate_limited(what)

    async def data(self, method: str, route: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        """`data` of the success envelope of one request."""
        resp = await self.call(method, route, what=what, **kwargs)
        return data_of(resp.content, what)

    async def image(self, ref: OutputRef) -> bytes:
        """An output image's bytes (`ref.url`); OutputUnavailable once the gateway has let it expire."""
        resp = await self.call(
            "GET", ref.url, what=f"downloading {ref.filename}", ok=(200, 404), api=False, limit=FILE_LIMIT
        )
        if resp.status_code == 404:
            raise OutputUnavailable(
                f"the gateway no longer has the image '{ref.filename}'",
                hint="The gateway keeps images for a limited time only; run the workflow again.",
            )
        return resp.content

    async def open_socket(self, route: str = "/events") -> ClientConnection:
        """The progress WebSocket (token in the Authorization header); 429 on the handshake waited out."""
        ws_url = f"{self.address.ws_base}{API_PREFIX.lstrip('/')}{route}"
        what = "opening the progress connection"
        for attempt in range(THROTTLE_RETRIES + 1):
            try:
                return await connect(
                    ws_url,
                    additional_headers=self.config.headers,
                    ssl=self.config.ssl_context if ws_url.startswith("wss:") else None,
                    open_timeout=self.config.connect_timeout,
                    max_size=_MAX_FRAME,
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    raise TokenRejected(self.url, token_given=self.token_given, status=status) from None
                if status == 429:
                    if attempt < THROTTLE_RETRIES:
                        await self._wait(retry_after_seconds(exc.response.headers), what)
                    continue
                if status == 503:
                    raise BackendUnavailable(self.url) from None
                raise ServerUnreachable(
                    self.url, f"the progress connection was refused (HTTP {status})"
                ) from None
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                raise self.config.unreachable(exc, "WebSocket", connecting=True) from None
        raise self._rate_limited(what)


async def probe_gateway(
    url: str,
    *,
    token: str | None,
    timeout: float = 10.0,
    ca_file: str | None = None,
    verify_tls: bool = True,
) -> bool:
    """True when `url` is a `comfydesk serve` gateway: `GET /api/v1/comfyui/nodes` answers in the gateway's
    envelope (a success, or an error such as 401 or 429); a ComfyUI answers 404 text there.

    Raises ServerUnreachable when nothing answers (then neither kind of server is there)."""
    address = gateway_address(url)
    config = TransportConfig(
        address=address,
        headers=auth_headers(token, None),
        ssl_context=make_ssl_context(ca_file=ca_file, verify_tls=verify_tls, secure=address.secure),
        timeout=timeout,
        secrets=(token,) if token else (),
    )
    async with config.client() as client:
        # Bounded in size and total time (a trickling answer cannot hold the probe past its timeout).
        resp = await config.fetch(client, "GET", f"{API_PREFIX}/nodes")
    if resp.status_code not in (200, 401, 429) and resp.status_code < 500:
        return False
    try:
        return is_gateway_envelope(json.loads(resp.content))
    except (ValueError, RecursionError):
        return False
