"""`comfydesk convert`: a UI-format workflow (or an image carrying one) to the API format ComfyUI runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
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
from comfydesk.core.errors import BackendError, CatalogError, WorkflowError
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.workflow import load_workflow
from comfydesk.store.atomic import atomic_write_bytes

__all__ = ["api_json", "needs_catalog", "register"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "convert",
        help="convert a UI-format workflow to API-format JSON",
        description="Convert a UI-format ComfyUI workflow (JSON, or a PNG/WebP carrying one in its metadata) "
        "to the API format that POST /prompt takes. API-format input is passed through. The conversion "
        "report goes to stderr.",
    )
    parser.add_argument("file", metavar="FILE", help="workflow JSON, or a PNG/WebP saved by ComfyUI")
    add_catalog_options(parser)
    parser.add_argument("-o", "--output", metavar="OUT", help="write the API JSON here instead of stdout")
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="emit node types the server lacks as the ComfyUI editor does (without class_type) instead of "
        "failing; the result is for export, the server will reject it",
    )
    parser.set_defaults(handler=handle)


def _is_image(data: bytes) -> bool:
    return data.startswith(_PNG_MAGIC) or (len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def needs_catalog(data: bytes) -> bool:
    """True when turning `data` into an API graph takes node definitions (it holds only a UI workflow)."""
    from comfydesk.core.convert import is_ui_workflow

    if _is_image(data):
        from comfydesk.core.pngmeta import read_embedded_workflow

        try:
            found = read_embedded_workflow(data) or {}
        except Exception:  # the loader reports a broken image properly; here we only decide what to fetch
            return False
        return found.get("prompt") is None and found.get("workflow") is not None
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError):  # not UTF-8 JSON, or too deep: the loader says so properly
        return False
    return bool(is_ui_workflow(doc))


def handle(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        error(f"{path}: cannot read the file: {exc.strerror or exc}")
        return EXIT_FAILED
    catalog: NodeCatalog | None = None
    try:
        # A catalog the user named is always used (an image's UI workflow then wins over its API prompt,
        # keeping node titles); otherwise the server is asked only when the file cannot convert without it.
        if args.object_info or getattr(args, "server", None) or needs_catalog(data):
            catalog = load_catalog(args)
    except CatalogError as exc:
        error(describe(exc))
        return EXIT_FAILED
    except BackendError as exc:
        error(f"converting {path} needs the server's node definitions: {describe(exc)}")
        return EXIT_UNAVAILABLE
    try:
        workflow = load_workflow(
            data, catalog=catalog, source=str(path), lenient=bool(getattr(args, "lenient", False))
        )
    except WorkflowError as exc:
        error(describe(exc))
        if exc.details:
            print(exc.details, file=sys.stderr)
        return EXIT_FAILED
    if workflow.report is not None:
        for line in workflow.report.lines():
            print(line, file=sys.stderr)
    data_out = api_json(workflow.graph.to_prompt())
    if args.output:
        out = Path(args.output)
        if out.is_dir():
            error(f"{out}: this is a folder; give a file name for the API JSON")
            return EXIT_FAILED
        try:
            # A temporary file renamed over the target: an existing file is replaced whole or left alone.
            atomic_write_bytes(out, data_out)
        except OSError as exc:
            error(f"{out}: cannot write: {exc.strerror or exc}")
            return EXIT_FAILED
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(data_out.decode("utf-8"))
    return EXIT_OK


def api_json(prompt: Any) -> bytes:
    """The API JSON as UTF-8. Text that UTF-8 cannot carry (a lone surrogate from a `\\udXXX` escape in
    the input) is written as a JSON escape instead, so the value survives and nothing fails half-way."""
    text = json.dumps(prompt, indent=2, ensure_ascii=False) + "\n"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(prompt, indent=2, ensure_ascii=True) + "\n").encode("ascii")
