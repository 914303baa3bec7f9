"""Subcommands of the `comfydesk` CLI. Each module defines `register(subparsers) -> None`, which adds its
parser and sets `handler=<function(args) -> int>` as a default."""

#: Modules registered by `comfydesk.cli`, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = ("check", "nodes", "convert", "run", "serve", "demo_server")
