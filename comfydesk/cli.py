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

    if args.self_test:
        from comfydesk.selftest import run_self_test

        return run_self_test()
    if args.install_desktop or args.uninstall_desktop:
        from comfydesk.desktop import cli_install

        return cli_install(install=bool(args.install_desktop))
    files = [Path(f) for f in getattr(args, "files", [])]
    missing = [f for f in files if not f.is_file()]
    if missing:
        print(
            f"comfydesk: {missing[0]} is neither a file nor a command (see comfydesk --help)", file=sys.stderr
        )
        return 2
    from comfydesk.gui import run

    data_dir = Path(args.data_dir) if args.data_dir else None
    return run(server=args.server, data_dir=data_dir, files=files)


def build_parser(commands: bool = True) -> argparse.ArgumentParser:
    """The whole command line; without `commands`, only the window's options (what `main` parses when no
    command is named: the command modules then stay unimported, which keeps them out of the window's
    start-up)."""
    parser = argparse.ArgumentParser(
        prog="comfydesk",
        usage="%(prog)s [options] [FILE ...] | %(prog)s COMMAND ...",
        description="Run ComfyUI workflows from a desktop window or the command line. "
        "Without a command, opens the window; FILE (a workflow .json, or a .png/.webp made by ComfyUI) "
        "is added to the library and opened.",
    )
    parser.add_argument("--version", action="version", version=f"comfydesk {__version__}")
    parser.add_argument("--server", help="ComfyUI address for the window (default: the last used profile)")
    parser.add_argument(
        "--data-dir", help="keep settings, library and caches here instead of the user data dir"
    )
    once = parser.add_mutually_exclusive_group()
    once.add_argument(
        "--self-test",
        action="store_true",
        help="check this install: open the window offscreen, run a sample on the built-in demo engine, "
        "print each step with its time; exit 0 when it all works",
    )
    once.add_argument(
        "--install-desktop",
        action="store_true",
        help="add comfydesk to your desktop's application menu (icon, file types) in ~/.local/share",
    )
    once.add_argument("--uninstall-desktop", action="store_true", help="remove what --install-desktop added")
    parser.set_defaults(handler=_cmd_gui, files=[], command=None)
    if commands:
        sub = parser.add_subparsers(dest="command", metavar="COMMAND")
        for name in COMMAND_MODULES:
            importlib.import_module(f"comfydesk.commands.{name}").register(sub)
    return parser


OPTIONS_WITH_VALUE = ("--server", "--data-dir")


def split_files(argv: Sequence[str], commands: Sequence[str]) -> tuple[list[str], list[str]]:
    """`comfydesk [options] [FILE ...]`: the files to open, apart from the rest of the command line.

    Files are the words before any command that are not options (nor an option's value); a command name
    (`run`, `check`...) and everything after it are left to the command. "--" ends the options.
    """
    rest: list[str] = []
    files: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            files.extend(args[i + 1 :])
            break
        if word in commands:
            rest.extend(args[i:])
            break
        if word.startswith("-") and word != "-":
            rest.append(word)
            if word in OPTIONS_WITH_VALUE and i + 1 < len(args):
                rest.append(args[i + 1])
                i += 1
        else:
            files.append(word)
        i += 1
    return rest, files


HELP_OPTIONS = ("-h", "--help")


def main(argv: Sequence[str] | None = None) -> int:
    commands = [c.replace("_", "-") for c in COMMAND_MODULES]
    rest, files = split_files(sys.argv[1:] if argv is None else argv, commands)
    # The window (no command named, no help asked): its options only. An unknown word is still an error.
    window_only = not any(w in commands or w in HELP_OPTIONS for w in rest)
    parser = build_parser(commands=not window_only)
    args = parser.parse_args(rest)
    if files:
        if args.command is not None or args.self_test or args.install_desktop or args.uninstall_desktop:
            parser.error(f"unexpected argument: {files[0]}")
        args.files = files
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
