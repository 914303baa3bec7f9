"""`comfydesk run` on a comfydesk gateway: the workflow is one stored there, named by its id (`3` or
`gateway:3`); only its `{placeholder}`s can be set, and the gateway checks the values."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from comfydesk.commands._common import EXIT_UNAVAILABLE, describe, error
from comfydesk.commands._run_inputs import (
    Abort,
    ImageFile,
    SetError,
    parse_assignment,
    print_issues,
    resolve_key,
    resolve_sets,
)
from comfydesk.core.errors import BackendError, ComfyDeskError, ValidationError
from comfydesk.core.graph import ApiGraph
from comfydesk.core.templates import FormSpec, build_form
from comfydesk.core.workflow import load_workflow

if TYPE_CHECKING:
    from comfydesk.backends.base import Backend
    from comfydesk.backends.v1 import V1Backend

__all__ = ["gateway_workflow_id", "prepare_gateway", "submit_gateway", "wrong_kind"]

_GATEWAY_ID_RE = re.compile(r"(?:gateway:)?(\d+)")


def gateway_workflow_id(target: str) -> str | None:
    """The gateway workflow id WORKFLOW names: `gateway:3`, or `3` when no file of that name exists."""
    match = _GATEWAY_ID_RE.fullmatch(target.strip())
    if match is None:
        return None
    if target.startswith("gateway:") or not Path(target).exists():
        return match.group(1)
    return None


async def _workflow_list(backend: V1Backend) -> str:
    """`1 'Blog Post Image', 2 '...'`: what the gateway offers, for messages that need an id."""
    try:
        summaries = await backend.list_workflows()
    except BackendError:
        return ""
    return ", ".join(f"{w.id} '{w.name}'" for w in summaries[:20]) + (", ..." if len(summaries) > 20 else "")


async def wrong_kind(backend: Backend, target: str, gateway_id: str | None) -> None:
    """Stop (exit 2) when WORKFLOW is an id but the server a ComfyUI, or a file but the server a gateway."""
    from comfydesk.backends.v1 import V1Backend

    if isinstance(backend, V1Backend) and gateway_id is None:
        known = await _workflow_list(backend)
        error(
            f"{backend.url} is a comfydesk gateway, which runs only the workflows stored on it: pass a "
            f"workflow id instead of '{target}' (comfydesk run 3 or run gateway:3)"
            + (f"; its workflows: {known}" if known else "")
        )
        raise Abort(EXIT_UNAVAILABLE)
    if not isinstance(backend, V1Backend) and gateway_id is not None:
        if target.startswith("gateway:"):
            error(f"{target} names a workflow on a comfydesk gateway, but {backend.url} is a ComfyUI server")
        else:
            error(f"{target}: cannot read the file: No such file or directory")
        raise Abort(EXIT_UNAVAILABLE)


def _gateway_inputs(form: FormSpec, sets: Sequence[str]) -> dict[str, Any]:
    """--set values for a stored workflow: placeholders only, typed by the inputs they sit in."""
    names = {f.key for f in form.placeholders}
    for text in sets:
        name, _ = parse_assignment(text)
        if name not in names:
            resolve_key(form, name)  # names nothing at all: its own, more precise message
            known = ", ".join(f"{{{k}}}" for k in sorted(names)) or "none"
            raise SetError(
                f"--set {name}: a gateway workflow is stored on the server; only its placeholders can be "
                f"set ({known})",
                hint="Ask the workflow's owner to turn the input into a {placeholder}.",
            )
    values = resolve_sets(form, sets)
    for key, value in values.items():
        if isinstance(value, ImageFile):
            raise SetError(
                f"--set {key}: this gateway does not accept uploads, so a local image cannot be used"
            )
    return values


def _print_gateway_issues(exc: ValidationError, form: FormSpec | None) -> None:
    n = len(exc.issues)
    error(f"the gateway refused the inputs ({n} problem{'s' if n != 1 else ''}):")
    placeholders = {f.key for f in form.placeholders} if form else set()
    for issue in exc.issues:
        line = issue.describe()
        if issue.field_key in placeholders:
            line += f" (set it with --set {issue.field_key}=VALUE)"
        print(f"  {line}", file=sys.stderr)


async def prepare_gateway(
    backend: V1Backend, args: argparse.Namespace, workflow_id: str
) -> tuple[ApiGraph, FormSpec, dict[str, Any]]:
    from comfydesk.backends.v1_errors import GatewayError

    catalog = await backend.node_catalog()
    try:
        doc = await backend.get_workflow(workflow_id)
    except GatewayError as exc:
        if exc.status != 404:
            raise
        known = await _workflow_list(backend)
        error(f"the gateway has no workflow {workflow_id}" + (f"; its workflows: {known}" if known else ""))
        raise Abort(EXIT_UNAVAILABLE) from exc
    try:
        workflow = load_workflow(doc, catalog=catalog, source=f"gateway workflow {workflow_id}")
        form = build_form(workflow, catalog)
        return workflow.graph, form, _gateway_inputs(form, args.sets)
    except ValidationError as exc:
        print_issues(exc, None)
        raise Abort(EXIT_UNAVAILABLE) from exc
    except ComfyDeskError as exc:
        error(describe(exc))
        raise Abort(EXIT_UNAVAILABLE) from exc


async def submit_gateway(
    backend: Backend, workflow_id: str, inputs: dict[str, Any], form: FormSpec | None
) -> str:
    try:
        execution = await backend.submit(workflow_id=workflow_id, inputs=inputs)
    except ValidationError as exc:  # the gateway checks the values: one issue per field
        _print_gateway_issues(exc, form)
        raise Abort(EXIT_UNAVAILABLE) from exc
    return execution.id
