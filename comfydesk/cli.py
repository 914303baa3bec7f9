"""The `comfydesk` command: the window by default, and subcommands for scripting and checks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from comfydesk import __version__

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


def _cmd_gui(args: argparse.Namespace) -> int:
    build_parser().print_help()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfydesk",
        description="Run ComfyUI workflows from a desktop window or the command line.",
    )
    parser.add_argument("--version", action="version", version=f"comfydesk {__version__}")
    parser.add_argument("--server", help="ComfyUI address for the window (default: the last used profile)")
    parser.add_argument(
        "--data-dir", help="keep settings, library and caches here instead of the user data dir"
    )
    parser.set_defaults(handler=_cmd_gui)
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
