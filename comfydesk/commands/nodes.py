"""`comfydesk nodes`: list the node types a server offers, as a table or as /api/v1-shaped JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from comfydesk.commands._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    add_catalog_options,
    describe,
    error,
    load_catalog,
)
from comfydesk.core.errors import BackendError, CatalogError
from comfydesk.core.nodes import NodeCatalog, NodeDef

__all__ = ["format_table", "register", "select_nodes"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "nodes",
        help="list the node types a server offers",
        description="List the node types a ComfyUI server or a comfydesk gateway offers (or a saved "
        "object_info file describes).",
    )
    add_catalog_options(parser)
    parser.add_argument("--search", metavar="TEXT", help="only nodes matching TEXT, best match first")
    parser.add_argument(
        "--category",
        metavar="C",
        help="only nodes in category C or below it (case-insensitive, e.g. 'sampling' or 'image/upscaling')",
    )
    parser.add_argument(
        "--json", action="store_true", help='print {"nodes": [...]} in the /api/v1 node shape instead'
    )
    parser.set_defaults(handler=handle)


def _in_category(node: NodeDef, category: str) -> bool:
    want = category.strip("/").lower()
    have = node.category.lower()
    return have == want or have.startswith(want + "/")


def select_nodes(
    catalog: NodeCatalog, *, search: str | None = None, category: str | None = None
) -> list[NodeDef]:
    """The nodes to show: search ranking when searching, otherwise sorted by category then id."""
    if search:
        found = catalog.search(search)
    else:
        found = sorted(catalog.values(), key=lambda n: (n.category.lower(), n.id.lower()))
    if category:
        found = [n for n in found if _in_category(n, category)]
    return found


def format_table(nodes: Sequence[NodeDef]) -> list[str]:
    """Aligned columns: id, display name, category."""
    rows = [("ID", "DISPLAY NAME", "CATEGORY")] + [(n.id, n.title, n.category) for n in nodes]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return [f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows]


def handle(args: argparse.Namespace) -> int:
    try:
        catalog = load_catalog(args)
    except CatalogError as exc:
        error(describe(exc))
        return EXIT_FAILED
    except BackendError as exc:
        error(describe(exc))
        return EXIT_UNAVAILABLE
    for warning in catalog.warnings:
        error(f"warning: {warning}")
    nodes = select_nodes(catalog, search=args.search, category=args.category)
    if args.json:
        text = json.dumps({"nodes": [n.to_v1() for n in nodes]}, indent=2, ensure_ascii=False)
        sys.stdout.write(text + "\n")
    elif nodes:
        sys.stdout.write("\n".join(format_table(nodes)) + "\n")
    else:
        error("no node type matches")
    return EXIT_OK
