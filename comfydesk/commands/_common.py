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
    return (url or default_server()).rstrip("/")


def token_of(args: argparse.Namespace) -> str | None:
    token: str | None = getattr(args, "token", None)
    return token or os.environ.get(TOKEN_ENV) or None


_USERINFO_RE = re.compile(r"(://)[^/@\s]+@")


def redact(text: str, token: str | None = None) -> str:
    """`text` without the token or a password written into a URL (`http://user:secret@host`)."""
    if token:
        text = text.replace(token, "***")
    return _USERINFO_RE.sub(r"\1***@", text)


def describe(exc: ComfyDeskError) -> str:
    """The error's message and, when it has one, its hint, as one readable sentence pair."""
    message = exc.message.rstrip()
    if not exc.hint:
        return message
    end = "" if message.endswith((".", "!", "?", ":")) else "."
    return f"{message}{end} {exc.hint.strip()}"


def error(message: str) -> None:
    """Print one error the way every command does: `comfydesk: <message>` on stderr."""
    print(f"comfydesk: {message}", file=sys.stderr, flush=True)


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine to completion on a fresh event loop."""
    return asyncio.run(coro)


def make_backend(args: argparse.Namespace, *, timeout: float = 30.0, kind: str = "comfyui") -> Backend:
    """The backend for --server/--token: `kind` "comfyui" or "gateway" (imported lazily: `nodes
    --object-info` needs no network)."""
    url = server_url(args)
    token = token_of(args)
    try:
        if kind == "gateway":
            from comfydesk.backends.v1 import V1Backend

            return V1Backend(url, token=token, timeout=timeout)
        from comfydesk.backends.comfyui import ComfyUIBackend

        return ComfyUIBackend(url, token=token, timeout=timeout)
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
        doc = json.loads(text)
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
