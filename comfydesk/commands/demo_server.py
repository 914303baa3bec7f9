"""`comfydesk demo-server`: the built-in demo engine (a fake ComfyUI drawing procedural images, no AI model)
served in the foreground, so any ComfyUI client (comfydesk included) can connect to it."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo-server",
        help="serve the demo engine (procedural images, no AI model) as a ComfyUI-compatible server",
        description="Serve the built-in demo engine: a ComfyUI-compatible server whose nodes draw procedural "
        "images with Pillow (no AI model). Stop it with Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8188, help="port to listen on (default: 8188)")
    parser.add_argument(
        "--data-dir",
        dest="demo_data_dir",
        metavar="DIR",
        help="keep input/, output/, temp/ and user/ here (default: a new temporary folder)",
    )
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from comfydesk.testing import create_app
    from comfydesk.testing.demo import demo_config

    data_dir = (
        Path(args.demo_data_dir) if args.demo_data_dir else Path(tempfile.mkdtemp(prefix="comfydesk-demo-"))
    )
    app = create_app(demo_config(data_dir))
    print(
        f"comfydesk demo engine (procedural images, no AI model) at http://{args.host}:{args.port}",
        flush=True,
    )
    print(f"data dir: {data_dir}", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
