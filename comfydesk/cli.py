"""The `comfydesk` command: the window by default, and subcommands for scripting and checks."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from comfydesk import __version__
from comfydesk.commands import COMMAND_MODULES

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def _cmd_gui(args: argparse.Namespace) -> int:
    from pathlib import Path

    from comfydesk.gui import run

    data_dir = Path(args.data_dir) if args.data_dir else None
    return run(server=args.server, data_dir=data_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfydesk",
        description="Run ComfyUI workflows from a desktop window or the command line. "
        "Without a command, opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"comfydesk {__version__}")
    parser.add_argument("--server", help="ComfyUI address for the window (default: the last used profile)")
    parser.add_argument(
        "--data-dir", help="keep settings, library and caches here instead of the user data dir"
    )
    parser.set_defaults(handler=_cmd_gui)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"comfydesk.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
