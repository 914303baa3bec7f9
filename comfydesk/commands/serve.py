"""`comfydesk serve`: the /api/v1/comfyui gateway in front of one or more ComfyUI machines, and
`comfydesk serve token create|list|revoke` to manage who may use it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from comfydesk.commands._common import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, error

__all__ = ["DEFAULT_PORT", "register"]

DEFAULT_PORT = 8189


def _default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("comfydesk", appauthor=False)) / "gateway"


def _where_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        dest="serve_data_dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help=f"keep the database, images and demo engine files here (default: {_default_data_dir()})",
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="SQLAlchemy database URL (default: a SQLite file gateway.db in the data dir); several "
        "instances share one PostgreSQL database: postgresql+psycopg://USER:PASSWORD@HOST/DB "
        "(see docs/deploy.md)",
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the /api/v1/comfyui API (the gateway) in front of ComfyUI machines",
        description="Serve the /api/v1/comfyui API: a shared workflow library, executions with progress over "
        "WebSocket, temporary image storage, token auth and rate limits, in front of one or more ComfyUI "
        "machines. Without --comfyui it fronts the built-in demo engine (procedural images, no AI model). "
        "On the first start with no tokens, an admin token is created and printed once. See docs/api.md.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default: {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--comfyui",
        metavar="URL",
        action="append",
        default=[],
        help="a ComfyUI machine to run on; repeat for several (default: the built-in demo engine)",
    )
    _where_options(parser)
    parser.add_argument(
        "--image-dir",
        metavar="DIR",
        default=None,
        help="keep generated images here (default: images/ in the data dir); several instances share "
        "one directory (a network mount will do), so any of them serves any image",
    )
    parser.add_argument(
        "--lease",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="with several instances: how long a run stays with an instance that stopped renewing it "
        "(it died) before another instance takes it over (default: 30)",
    )
    parser.add_argument(
        "--reconnect-grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a run posted while every ComfyUI machine is reconnecting is accepted and held this long "
        "for one to come back, then fails (default: 30; 0 refuses it with 503 at once)",
    )
    parser.add_argument(
        "--image-ttl",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="how long generated images stay downloadable (default: 3600)",
    )
    parser.add_argument(
        "--rate-limit",
        default="600/min",
        metavar="N/min",
        help="requests per token per minute (default: 600/min; also N/second, N/hour)",
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=None,
        metavar="N",
        help="also allow at most N requests per token within one second (default: no extra cap)",
    )
    parser.add_argument(
        "--max-body",
        type=int,
        default=8 * 1024 * 1024,
        metavar="BYTES",
        help="largest request body accepted; larger ones get 413 (default: 8 MiB)",
    )
    parser.set_defaults(handler=_serve)

    tokens = parser.add_subparsers(dest="serve_command", metavar="token")
    token = tokens.add_parser("token", help="create, list or revoke API tokens")
    actions = token.add_subparsers(dest="token_action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a token and print it once (only its hash is kept)")
    create.add_argument("name", help="who or what the token is for (unique)")
    create.add_argument("--admin", action="store_true", help="may see every execution and the backends")
    _where_options(create)
    create.set_defaults(handler=_token_create)
    listing = actions.add_parser("list", help="list tokens (names, never secrets)")
    _where_options(listing)
    listing.set_defaults(handler=_token_list)
    revoke = actions.add_parser("revoke", help="revoke a token by name; it stops working within 2 s")
    revoke.add_argument("name")
    _where_options(revoke)
    revoke.set_defaults(handler=_token_revoke)


_EXTRAS_HINT = "comfydesk serve needs the server extras: pip install 'comfydesk[server]'"


def _server_libraries_missing() -> str | None:
    """The missing library's name when the server extras are not installed, else None."""
    import importlib.util

    for module in ("fastapi", "sqlalchemy", "alembic", "limits"):
        if importlib.util.find_spec(module) is None:
            return module
    return None


def _data_dir(args: argparse.Namespace) -> Path:
    given = getattr(args, "serve_data_dir", None)
    return Path(given) if given else _default_data_dir()


def _database(args: argparse.Namespace) -> str:
    url: str | None = getattr(args, "database", None)
    return url or f"sqlite:///{_data_dir(args) / 'gateway.db'}"


def _open_store(args: argparse.Namespace) -> Any:
    missing = _server_libraries_missing()
    if missing is not None:
        raise SystemExit(f"comfydesk: {missing} is not installed. {_EXTRAS_HINT}")
    import importlib.util

    from comfydesk.gateway.store import GatewayStore

    url = _database(args)
    if url.startswith("postgresql") and importlib.util.find_spec("psycopg") is None:
        raise SystemExit(f"comfydesk: psycopg is not installed (PostgreSQL needs it). {_EXTRAS_HINT}")
    _data_dir(args).mkdir(parents=True, exist_ok=True)
    return GatewayStore.open(url)


def _token_create(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        info, secret = store.create_token(args.name, admin=args.admin)
    except ValueError as exc:
        error(str(exc))
        return EXIT_FAILED
    finally:
        store.close()
    kind = "admin token" if info.admin else "token"
    print(secret)
    print(f"created {kind} '{info.name}'; it is shown only now: keep it safe", file=sys.stderr)
    return EXIT_OK


def _token_list(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        items = store.list_tokens()
    finally:
        store.close()
    if not items:
        print("no tokens yet (comfydesk serve token create NAME)", file=sys.stderr)
    for t in items:
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        role = "admin" if t.admin else "user"
        print(f"{t.name}\t{role}\t{state}\tcreated {t.created_at:%Y-%m-%d %H:%M}")
    return EXIT_OK


def _token_revoke(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        done = store.revoke_token(args.name)
    finally:
        store.close()
    if not done:
        error(f"no active token named '{args.name}'")
        return EXIT_FAILED
    print(f"revoked token '{args.name}'", file=sys.stderr)
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    missing = _server_libraries_missing()
    if missing is not None:
        error(f"{missing} is not installed. {_EXTRAS_HINT}")
        return EXIT_UNAVAILABLE
    from comfydesk.gateway.app import GatewayConfig
    from comfydesk.gateway.ratelimit import parse_rate
    from comfydesk.gateway.server import run_gateway, start_demo_engine

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access", "websockets", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        parse_rate(args.rate_limit)
    except ValueError as exc:
        error(str(exc))
        return EXIT_UNAVAILABLE
    if not args.lease > 0:
        error(f"--lease must be a positive number of seconds, not {args.lease:g}")
        return EXIT_UNAVAILABLE
    if not 0 <= args.reconnect_grace <= 86400:
        error(f"--reconnect-grace must be 0 to 86400 seconds, not {args.reconnect_grace:g}")
        return EXIT_UNAVAILABLE
    data_dir = _data_dir(args)
    try:
        store = _open_store(args)
    except Exception as exc:  # an unreachable database, wrong credentials: say which, without a traceback
        error(
            f"cannot open the database: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
        return EXIT_UNAVAILABLE
    try:
        secret = None
        if not store.has_tokens():
            try:
                _info, secret = store.create_token("admin", admin=True)
            except Exception:  # another instance starting at the same time created it first
                secret = None
        if secret is not None:
            print(
                "No tokens yet: created the admin token 'admin'. It is shown only now:\n"
                f"  {secret}\n"
                "More with: comfydesk serve token create NAME [--admin]",
                file=sys.stderr,
                flush=True,
            )
    finally:
        store.close()
    stops = []
    urls = list(args.comfyui)
    if not urls:
        url, stop = start_demo_engine(data_dir)
        urls, stops = [url], [stop]
        print(f"no --comfyui given: fronting the demo engine at {url} (procedural images, no AI model)")
    config = GatewayConfig(
        comfyui_urls=urls,
        data_dir=data_dir,
        database_url=getattr(args, "database", None),
        image_dir=Path(args.image_dir) if args.image_dir else None,
        lease=args.lease,
        reconnect_grace=args.reconnect_grace,
        image_ttl=args.image_ttl,
        rate_limit=args.rate_limit,
        burst=args.burst,
        max_body=args.max_body,
    )

    def ready(url: str) -> None:
        print(f"comfydesk gateway at {url}/api/v1/comfyui (pid {os.getpid()})", flush=True)

    try:
        run_gateway(config, host=args.host, port=args.port, on_ready=ready)
    except OSError as exc:
        error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return EXIT_UNAVAILABLE
    finally:
        for stop in stops:
            stop()
    return EXIT_OK
