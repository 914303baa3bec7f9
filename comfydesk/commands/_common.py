"""What the subcommands share: server options, running a coroutine, the one way errors reach stderr.

Commands import only `comfydesk.core` and `comfydesk.backends` (never Qt), so they work on a headless box.
The server behind `--server` is a ComfyUI or a `comfydesk serve` gateway: `--kind auto` (the default) asks
`GET /api/v1/comfyui/nodes`, which only a gateway answers in its JSON envelope (even a 401 does).
Exit codes used across commands: 0 success, 1 the work itself failed (a conversion, an execution),
2 the server could not be reached or the input was refused (validation, bad file), 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from comfydesk.core.errors import CatalogError, ComfyDeskError, ServerUnreachable
from comfydesk.core.limits import CATALOG_MAX_CONTAINERS, JsonTooComplex, loads_bounded, printable
from comfydesk.core.nodes import NodeCatalog, parse_object_info, parse_v1_nodes

if TYPE_CHECKING:
    from comfydesk.backends.base import Backend

__all__ = [
    "DEFAULT_SERVER",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "KINDS",
    "add_catalog_options",
    "add_server_options",
    "default_server",
    "describe",
    "error",
    "load_catalog",
    "load_catalog_file",
    "make_backend",
    "open_backend",
    "redact",
    "run_coroutine",
    "server_url",
    "token_of",
]

DEFAULT_SERVER = "http://127.0.0.1:8188"
SERVER_ENV = "COMFYDESK_SERVER"
TOKEN_ENV = "COMFYDESK_TOKEN"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNAVAILABLE = 2
EXIT_INTERRUPTED = 130

#: --kind values: `auto` tells a gateway from a ComfyUI by asking it.
KINDS = ("auto", "comfyui", "gateway")

T = TypeVar("T")


def default_server() -> str:
    """The server used when --server is not given: $COMFYDESK_SERVER, else the local ComfyUI port."""
    return os.environ.get(SERVER_ENV, "").strip() or DEFAULT_SERVER


def add_server_options(parser: argparse.ArgumentParser, *, token: bool = True) -> None:
    parser.add_argument(
        "--server",
        metavar="URL",
        # SUPPRESS: without the option, `comfydesk --server URL <command>` (the main parser's) still counts.
        default=argparse.SUPPRESS,
        help=f"ComfyUI or comfydesk gateway address (default: ${SERVER_ENV} or {DEFAULT_SERVER})",
    )
    if token:
        parser.add_argument(
            "--token",
            metavar="T",
            default=None,
            help=f"bearer token: a gateway's token, or for a ComfyUI behind a proxy (default: ${TOKEN_ENV})",
        )
    _add_kind_option(parser)


def _add_kind_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default="auto",
        help="what --server is: a ComfyUI, a comfydesk gateway (/api/v1), or auto to find out (default)",
    )


def add_catalog_options(parser: argparse.ArgumentParser) -> None:
    """--server URL or --object-info FILE, for commands that only need node definitions."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--server",
        metavar="URL",
        # SUPPRESS: without the option, `comfydesk --server URL <command>` (the main parser's) still counts.
        default=argparse.SUPPRESS,
        help="read node definitions from this ComfyUI or comfydesk gateway "
        f"(default: ${SERVER_ENV} or {DEFAULT_SERVER})",
    )
    group.add_argument(
        "--object-info",
        metavar="FILE",
        default=None,
        help="read node definitions from a saved /object_info (or /api/v1 nodes) JSON file instead",
    )
    parser.add_argument("--token", metavar="T", default=None, help=f"bearer token (default: ${TOKEN_ENV})")
    _add_kind_option(parser)


def server_url(args: argparse.Namespace) -> str:
    url: str | None = getattr(args, "server", None)
    url = (url or default_server()).rstrip("/")
    _remember_url_secrets(url)
    return url


def token_of(args: argparse.Namespace) -> str | None:
    token: str | None = getattr(args, "token", None)
    token = token or os.environ.get(TOKEN_ENV) or None
    if token:
        _remember(token)
    return token


_USERINFO_RE = re.compile(r"(://)[^/@\s]+@")
_SECRET_QUERY_RE = re.compile(
    r"([?&;][^=&#\s]*(?:token|key|secret|pass|pwd|auth|sig|session|credential)[^=&#\s]*=)[^&#\s]*",
    re.IGNORECASE,
)
_AUTH_SCHEME_RE = re.compile(r"\b(Basic|Bearer)\s+[A-Za-z0-9._~+/=-]{6,}")
#: Secrets this command was given (token, URL password, Basic credentials as sent): never printed.
_KNOWN_SECRETS: set[str] = set()


def _remember(secret: str) -> None:
    if len(secret) >= 3:
        _KNOWN_SECRETS.add(secret)


def _remember_url_secrets(url: str) -> None:
    """The password of `http://user:pass@host`, its Basic auth form, and secret-looking query values."""
    import base64
    from urllib.parse import parse_qsl, unquote, urlsplit

    try:
        parts = urlsplit(url if "://" in url else "http://" + url)
        user, password = parts.username, parts.password
    except ValueError:
        return
    if password:
        _remember(password)
        _remember(unquote(password))
        for name, secret in ((user or "", password), (unquote(user or ""), unquote(password))):
            _remember(base64.b64encode(f"{name}:{secret}".encode()).decode("ascii"))
    for key, value in parse_qsl(parts.query):
        if _SECRET_QUERY_RE.search(f"?{key}=x"):
            _remember(value)


def redact(text: str, token: str | None = None) -> str:
    """`text` without the token, any secret the command was given, a password written into a URL
    (`http://user:secret@host`), secret-looking query values (`?token=...`) or Basic/Bearer credentials."""
    if token:
        _remember(token)
    for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _USERINFO_RE.sub(r"\1***@", text)
    text = _SECRET_QUERY_RE.sub(r"\1***", text)
    return _AUTH_SCHEME_RE.sub(r"\1 ***", text)


def describe(exc: ComfyDeskError) -> str:
    """The error's message and, when it has one, its hint, as one readable sentence pair."""
    message = exc.message.rstrip()
    if not exc.hint:
        return message
    end = "" if message.endswith((".", "!", "?", ":")) else "."
    return f"{message}{end} {exc.hint.strip()}"


def error(message: str) -> None:
    """Print one error the way every command does: `comfydesk: <message>` on stderr, without secrets and
    without control characters (server text may carry terminal escapes)."""
    print(f"comfydesk: {printable(redact(message), keep_newlines=True)}", file=sys.stderr, flush=True)


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine to completion on a fresh event loop."""
    return asyncio.run(coro)


def make_backend(args: argparse.Namespace, *, timeout: float = 30.0, kind: str = "comfyui") -> Backend:
    """The backend for --server/--token: `kind` "comfyui" or "gateway" (imported lazily: `nodes
    --object-info` needs no network)."""
    url = server_url(args)
    token = token_of(args)
    from comfydesk.backends.reconnect import cli_policy

    try:
        if kind == "gateway":
            from comfydesk.backends.v1 import V1Backend

            return V1Backend(url, token=token, timeout=timeout, reconnect=cli_policy())
        from comfydesk.backends.comfyui import ComfyUIBackend

        return ComfyUIBackend(url, token=token, timeout=timeout, reconnect=cli_policy())
    except ValueError as exc:  # an address that is not a URL we can speak to
        raise ServerUnreachable(redact(url, token), str(exc)) from None


async def resolve_kind(args: argparse.Namespace, *, timeout: float = 10.0) -> str:
    """ "comfyui" or "gateway": --kind when it says, else what the server turns out to be."""
    kind: str = getattr(args, "kind", "auto") or "auto"
    if kind != "auto":
        return kind
    from comfydesk.backends.v1 import probe_gateway

    url = server_url(args)
    try:
        gateway = await probe_gateway(url, token=token_of(args), timeout=timeout)
    except ValueError as exc:
        raise ServerUnreachable(redact(url, token_of(args)), str(exc)) from None
    return "gateway" if gateway else "comfyui"


async def open_backend(args: argparse.Namespace, *, timeout: float = 30.0) -> Backend:
    """The backend for --server/--token/--kind, the kind found out first when it is `auto`."""
    kind = await resolve_kind(args, timeout=min(timeout, 10.0))
    return make_backend(args, timeout=timeout, kind=kind)


def load_catalog_file(path: str | Path) -> NodeCatalog:
    """Node definitions from a saved /object_info answer or an /api/v1 node list; raises CatalogError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CatalogError(f"{p}: cannot read the file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{p}: not a UTF-8 text file") from exc
    try:
        doc = loads_bounded(text, max_containers=CATALOG_MAX_CONTAINERS)
    except JsonTooComplex as exc:
        raise CatalogError(f"{p}: not usable node definitions: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(
            f"{p}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc
    if isinstance(doc, list) or (isinstance(doc, dict) and ("nodes" in doc or "data" in doc)):
        return parse_v1_nodes(doc)
    return parse_object_info(doc)


async def fetch_catalog(args: argparse.Namespace) -> NodeCatalog:
    backend = await open_backend(args)
    try:
        return await backend.node_catalog()
    finally:
        await backend.close()


def load_catalog(args: argparse.Namespace) -> NodeCatalog:
    """From --object-info FILE when given, otherwise from the server; raises CatalogError or BackendError."""
    path: str | None = getattr(args, "object_info", None)
    if path:
        return load_catalog_file(path)
    return run_coroutine(fetch_catalog(args))
