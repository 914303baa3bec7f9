"""`comfydesk demo-server`: the built-in demo engine (a fake ComfyUI drawing procedural images, no AI model)
served in the foreground, so any ComfyUI client (comfydesk included) can connect to it."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["port_number", "register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo-server",
        help="serve the demo engine (procedural images, no AI model) as a ComfyUI-compatible server",
        description="Serve the built-in demo engine: a ComfyUI-compatible server whose nodes draw procedural "
        "images with Pillow (no AI model). Stop it with Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8188, help="port to listen on (default: 8188)")
    parser.add_argument(
        "--data-dir",
        dest="demo_data_dir",
        metavar="DIR",
        help="keep input/, output/, temp/ and user/ here (default: a new temporary folder)",
    )
    parser.set_defaults(handler=_serve)


def port_number(text: str) -> int:
    """--port: a TCP port, 1 to 65535 (argparse turns the error into a usage message, exit 2)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, got {port}")
    return port


def _error(message: str) -> int:
    print(f"comfydesk: {message}", file=sys.stderr, flush=True)
    return 2


def _serve(args: argparse.Namespace) -> int:
    import socket

    import uvicorn

    from comfydesk.testing import create_app
    from comfydesk.testing.demo import demo_config

    if args.demo_data_dir:
        data_dir = Path(args.demo_data_dir)
        if data_dir.exists() and not data_dir.is_dir():
            return _error(f"--data-dir {data_dir}: this is a file, not a folder; choose a folder")
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return _error(f"--data-dir {data_dir}: cannot create the folder: {exc.strerror or exc}")
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="comfydesk-demo-"))
    # Bind first, so a taken port or an unknown address is one plain sentence, not a server traceback.
    try:
        infos = socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM)
        family, kind, proto, _name, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        return _error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        return _error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    try:
        app = create_app(demo_config(data_dir))
    except OSError as exc:
        sock.close()
        return _error(f"--data-dir {data_dir}: cannot use the folder: {exc.strerror or exc}")
    print(
        f"comfydesk demo engine (procedural images, no AI model) at http://{args.host}:{args.port}",
        flush=True,
    )
    print(f"data dir: {data_dir}", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
    return 0
