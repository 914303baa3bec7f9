"""`comfydesk run`: run a workflow on a server, show progress, save every output.

On a ComfyUI the workflow is a file. Inputs are set with `--set NAME=VALUE`, where NAME is a
`{placeholder}`, `NODE_ID.input` or `Node title.input`; the value is parsed by the field's type from the
node definitions. The graph is checked against the server's node definitions before it is submitted.

On a comfydesk gateway the workflow is one stored there, named by its id (`3` or `gateway:3`): the gateway
runs only its own workflows, so only their `{placeholder}`s can be set, and the gateway checks the values.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from comfydesk.commands._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    add_server_options,
    describe,
    error,
    open_backend,
    redact,
    run_coroutine,
    token_of,
)
from comfydesk.commands._progress import ProgressView, clock
from comfydesk.commands._run_gateway import (
    gateway_workflow_id,
    prepare_gateway,
    submit_gateway,
    wrong_kind,
)
from comfydesk.commands._run_inputs import (
    Abort,
    ImageFile,
    SetError,
    print_issues,
    resolve_sets,
    safe_stem,
    text_of,
    write_unique,
)
from comfydesk.core.errors import (
    BackendError,
    ComfyDeskError,
    OutputUnavailable,
    ServerResponseError,
    UnknownNodeTypeError,
    UnsafeInputError,
    ValidationError,
    WorkflowError,
)
from comfydesk.core.events import Completed, Failed, Interrupted, OutputRef
from comfydesk.core.graph import ApiGraph
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.templates import FormSpec, build_form
from comfydesk.core.workflow import Workflow, load_workflow

if TYPE_CHECKING:
    from comfydesk.backends.base import Backend
    from comfydesk.backends.v1 import V1Backend

__all__ = ["DEFAULT_OUT_DIR", "register"]

DEFAULT_OUT_DIR = "comfydesk-output"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run a workflow and save its outputs",
        description="Run a workflow (API or UI format JSON, the /api/v1 workflow shape, or a PNG/WebP "
        "carrying a workflow) on a ComfyUI server, or a workflow stored on a comfydesk gateway (by its id), "
        "show progress on stderr and save every output.",
        epilog="On a comfydesk gateway: `comfydesk run 3 --server URL --token T --set prompt='a red fox'` "
        "runs its workflow 3 (`gateway:3` says the same and insists on a gateway); only {placeholders} can "
        "be set there. Without a token option, $COMFYDESK_TOKEN is used.",
    )
    parser.add_argument(
        "file",
        metavar="WORKFLOW",
        help="a workflow file; on a comfydesk gateway the id of a workflow stored there (3 or gateway:3)",
    )
    add_server_options(parser)
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set an input: a {placeholder} name, NODE_ID.input or 'Node title.input' (repeatable); "
        "for an image input, a local file path is uploaded first; on a gateway, placeholders only",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=DEFAULT_OUT_DIR,
        help=f"folder for the outputs (default: ./{DEFAULT_OUT_DIR}); existing files are never overwritten",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object {execution_id, status, outputs, elapsed} instead of the paths",
    )
    parser.add_argument(
        "--timeout",
        metavar="S",
        type=positive_seconds,
        default=None,
        help="give up (and cancel the run on the server) after S seconds; default: wait as long as it takes",
    )
    parser.set_defaults(handler=handle)


def positive_seconds(text: str) -> float:
    """--timeout: a finite number of seconds above 0 (argparse turns the ValueError into a usage error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


def check_out_dir(out: Path) -> None:
    """Refuse an --out that cannot hold the outputs before anything is submitted (Abort, exit 2)."""
    if out.exists():
        if not out.is_dir():
            error(f"--out {out}: this is a file, not a folder; choose a folder for the outputs")
            raise Abort(EXIT_UNAVAILABLE)
        if not os.access(out, os.W_OK | os.X_OK):
            error(f"--out {out}: this folder cannot be written to; choose another one")
            raise Abort(EXIT_UNAVAILABLE)
        return
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        error(f"--out {out}: {parent} is a file, so the folder cannot be created; choose another folder")
        raise Abort(EXIT_UNAVAILABLE)
    if not os.access(parent, os.W_OK | os.X_OK):
        error(f"--out {out}: the folder cannot be created in {parent}; choose another folder")
        raise Abort(EXIT_UNAVAILABLE)


# --------------------------------------------------------------------------------------------------------
# The run


@dataclass
class RunResult:
    code: int
    execution_id: str | None = None
    status: str = ""
    outputs: list[dict[str, str]] = field(default_factory=list)
    elapsed: float = 0.0
    error: str = ""


def _load(data: bytes, path: Path, catalog: NodeCatalog) -> Workflow:
    try:
        return load_workflow(data, catalog=catalog, source=str(path))
    except ComfyDeskError as exc:
        error(describe(exc))
        raise Abort(EXIT_UNAVAILABLE) from exc


async def _upload_images(backend: Backend, values: dict[str, Any]) -> bool:
    uploaded = False
    for key, value in list(values.items()):
        if isinstance(value, ImageFile):
            try:
                data = value.path.read_bytes()
            except OSError as exc:
                error(f"--set {key}: cannot read {value.path}: {exc.strerror or exc}")
                raise Abort(EXIT_UNAVAILABLE) from exc
            image = await backend.upload_image(data, value.path.name)
            print(f"uploaded {value.path} as {image.input_value}", file=sys.stderr)
            values[key] = image.input_value
            uploaded = True
    return uploaded


async def _prepare(backend: Backend, args: argparse.Namespace, data: bytes, path: Path) -> ApiGraph:
    catalog = await backend.node_catalog()
    workflow = _load(data, path, catalog)
    if workflow.report is not None:
        for line in workflow.report.lines():
            print(line, file=sys.stderr)
    form: FormSpec | None = None
    try:
        form = build_form(workflow, catalog)
        values = resolve_sets(form, args.sets)
        uploads = {k for k, v in values.items() if isinstance(v, ImageFile)}
        if uploads:  # report what is wrong with the rest before sending files anywhere
            issues = form.validate({k: v for k, v in values.items() if k not in uploads})
            if [i for i in issues if i.field_key not in uploads]:
                raise ValidationError([i for i in issues if i.field_key not in uploads])
        if await _upload_images(backend, values):
            # LoadImage's option list is a snapshot of the input folder: fetch it again to see the upload.
            catalog = await backend.node_catalog(refresh=True)
            form = build_form(workflow, catalog)
        return form.fill(values)
    except SetError as exc:
        error(describe(exc))
        raise Abort(EXIT_UNAVAILABLE) from exc
    except UnknownNodeTypeError as exc:
        error(describe(exc))
        raise Abort(EXIT_UNAVAILABLE) from exc
    except ValidationError as exc:
        print_issues(exc, form)
        raise Abort(EXIT_UNAVAILABLE) from exc


async def _save_outputs(
    backend: Backend,
    outputs: Sequence[OutputRef],
    out_dir: Path,
    written: list[dict[str, str]] | None = None,
) -> tuple[list[dict[str, str]], list[str]]:
    """Write every output; one that cannot be fetched or has a hostile name is reported, the rest saved.
    `written` (when given) fills up as files are written, so an interrupted save still knows them."""
    from comfydesk.backends.comfyui import safe_output_name

    written = [] if written is None else written
    problems: list[str] = []
    for ref in outputs:
        try:
            if ref.is_file:
                name = safe_output_name(ref)
                data = await backend.fetch_output(ref)
            elif ref.kind == "text" or isinstance(ref.data, str):
                name = f"{safe_stem(ref.node_id)}_{safe_stem(ref.kind)}.txt"
                data = text_of(ref.data).encode("utf-8")
            else:  # flags such as {"animated": [true]} describe other outputs; they are not results
                continue
            path = write_unique(out_dir, name, data)
        except (OutputUnavailable, UnsafeInputError, ServerResponseError) as exc:
            problems.append(f"output of node {ref.node_id} not saved: {describe(exc)}")
            continue
        except OSError as exc:
            where = Path(exc.filename) if isinstance(exc.filename, str) else out_dir
            problems.append(
                f"output of node {ref.node_id} not saved: cannot write {where}: {exc.strerror or exc}"
            )
            if not out_dir.is_dir() or exc.errno in _FOLDER_ERRORS:
                break  # the folder itself is unusable: every later output would fail the same way
            continue
        written.append({"path": str(path), "node_id": ref.node_id, "kind": ref.kind})
    return written, problems


async def _interrupt(backend: Backend, execution_id: str, view: ProgressView) -> None:
    view.message("interrupted: cancelling the run on the server ...")
    try:
        await asyncio.wait_for(backend.cancel(execution_id), timeout=10)
    except (BackendError, TimeoutError) as exc:
        error(f"could not cancel run {execution_id} on the server: {exc}")


async def _follow(
    backend: Backend,
    events: asyncio.Queue[object],
    execution_id: str,
    view: ProgressView,
    stop: asyncio.Event,
    deadline: float | None,
) -> object:
    """Feed the run's events to the view until its terminal event, Ctrl-C (returns `stop`), the deadline
    (returns a TimeoutError) or a connection the backend gave up on (returns that ConnectionChanged)."""
    from comfydesk.backends.base import ConnectionChanged, ConnectionState

    stopped = asyncio.ensure_future(stop.wait())
    try:
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if view.tty:  # keep the elapsed time moving while a node reports nothing (model loading)
                timeout = 1.0 if timeout is None else min(timeout, 1.0)
            getter = asyncio.ensure_future(events.get())
            done, _ = await asyncio.wait(
                {getter, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if getter not in done:
                getter.cancel()
                if stopped in done:
                    return stop
                if deadline is not None and time.monotonic() >= deadline:
                    return TimeoutError()
                view.show(view.line())
                continue
            event = getter.result()
            if isinstance(event, Exception):
                raise event
            if getattr(event, "execution_id", execution_id) != execution_id:
                continue
            _connection_note(event, view)
            if isinstance(event, ConnectionChanged) and event.status.state is ConnectionState.DISCONNECTED:
                return event
            view.handle(event)
            if isinstance(event, Completed | Failed | Interrupted):
                return event
    finally:
        stopped.cancel()


#: Write errors that mean the output folder itself is unusable (then later outputs are not tried).
_FOLDER_ERRORS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, getattr(errno, "EDQUOT", errno.ENOSPC)})


def _gave_up(backend: Backend) -> bool:
    """True when the backend has given up its connection (after its reconnect budget)."""
    from comfydesk.backends.base import ConnectionState

    status = getattr(backend, "status", None)
    return getattr(status, "state", None) is ConnectionState.DISCONNECTED and bool(
        getattr(status, "reason", "")
    )


def _connection_note(event: object, view: ProgressView) -> None:
    from comfydesk.backends.base import ConnectionChanged, ConnectionState, Throttled

    if isinstance(event, Throttled):
        what = f" ({event.what})" if event.what else ""
        view.message(
            f"the server is busy (too many requests); trying again in {event.retry_after:.1f} s{what}"
        )
        return
    if not isinstance(event, ConnectionChanged):
        return
    status = event.status
    if status.state is ConnectionState.RECONNECTING:
        view.reconnecting = True
        wait = f", next try in {status.next_try_in:.1f} s" if status.next_try_in is not None else ""
        reason = f": {status.reason}" if status.reason else ""
        view.message(f"connection lost{reason}; reconnecting (attempt {status.attempt}{wait})")
    elif status.state is ConnectionState.CONNECTED and view.reconnecting:
        view.reconnecting = False
        view.message("reconnected")


async def _pump(backend: Backend, queue: asyncio.Queue[object]) -> None:
    try:
        async for event in backend.events():
            await queue.put(event)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # handed to the follower, which raises it where the run is handled
        await queue.put(exc)


def _install_sigint(stop: asyncio.Event) -> bool:
    loop = asyncio.get_running_loop()

    def on_sigint() -> None:
        stop.set()
        # A second Ctrl-C while we cancel on the server stops waiting (KeyboardInterrupt, exit 130).
        loop.remove_signal_handler(signal.SIGINT)

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
        return False
    return True


async def _run(
    args: argparse.Namespace, data: bytes | None, path: Path, gateway_id: str | None = None
) -> RunResult:
    backend = await open_backend(args)
    stop = asyncio.Event()
    hooked = _install_sigint(stop)
    pump: asyncio.Task[None] | None = None
    execution_id: str | None = None
    view: ProgressView | None = None
    form: FormSpec | None = None
    inputs: dict[str, Any] = {}
    try:
        await wrong_kind(backend, args.file, gateway_id)
        await backend.connect()
        if gateway_id is not None:
            graph, form, inputs = await prepare_gateway(cast("V1Backend", backend), args, gateway_id)
        else:
            assert data is not None
            graph = await _prepare(backend, args, data, path)
        events: asyncio.Queue[object] = asyncio.Queue()
        pump = asyncio.create_task(_pump(backend, events))
        await asyncio.sleep(0)  # let the pump subscribe before anything can happen to our run
        if stop.is_set():
            return RunResult(EXIT_INTERRUPTED, status="cancelled")
        t0 = time.monotonic()
        if gateway_id is not None:
            execution_id = await submit_gateway(backend, gateway_id, inputs, form)
        else:
            execution_id = (await backend.submit(graph)).id
        view = ProgressView(graph, await backend.node_catalog(), sys.stderr, sys.stderr.isatty(), t0)
        print(f"submitted {execution_id}", file=sys.stderr, flush=True)
        deadline = t0 + args.timeout if args.timeout is not None else None
        outcome = await _follow(backend, events, execution_id, view, stop, deadline)
        if isinstance(outcome, Completed):
            view.show(f"[100%] completed  {clock(time.monotonic() - t0)}")
        view.end()
        elapsed = round(time.monotonic() - t0, 3)
        if outcome is stop:
            await _interrupt(backend, execution_id, view)
            return RunResult(EXIT_INTERRUPTED, execution_id, "cancelled", elapsed=elapsed)
        if isinstance(outcome, TimeoutError):
            error(f"the run took longer than {args.timeout:g} s; cancelling it on the server")
            await _interrupt(backend, execution_id, view)
            return RunResult(EXIT_FAILED, execution_id, "cancelled", elapsed=elapsed, error="timed out")
        if not isinstance(outcome, Completed | Failed | Interrupted) or (
            isinstance(outcome, Failed) and _gave_up(backend)
        ):  # the backend gave up reconnecting (it fails the runs it leaves open first): exit 2
            status = getattr(outcome, "status", None) or getattr(backend, "status", None)
            reason = getattr(status, "reason", "") or "connection lost"
            error(f"lost the connection to {backend.url} during run {execution_id}: {reason}")
            return RunResult(EXIT_UNAVAILABLE, execution_id, "failed", elapsed=elapsed, error=reason)
        if isinstance(outcome, Failed):
            info = outcome.error
            where = f"node {info.node_id} ({info.node_type})" if info.node_id else "the server"
            exc_type = f"{info.exception_type}: " if info.exception_type else ""
            message = f"run {execution_id} failed at {where}: {exc_type}{info.message.strip()}"
            error(message)
            return RunResult(EXIT_FAILED, execution_id, "failed", elapsed=elapsed, error=message)
        if isinstance(outcome, Interrupted):
            message = f"run {execution_id} was interrupted on the server ({outcome.reason})"
            error(message)
            return RunResult(EXIT_FAILED, execution_id, "cancelled", elapsed=elapsed, error=message)
        assert isinstance(outcome, Completed)
        saved: list[dict[str, str]] = []
        saving = asyncio.ensure_future(_save_outputs(backend, outcome.outputs, Path(args.out), saved))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({saving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not saving.done():  # Ctrl+C while downloading: stop now; nothing half-written is left behind
            saving.cancel()
            with contextlib.suppress(BaseException):
                await saving
            error(f"interrupted while saving the outputs: {len(saved)} of {len(outcome.outputs)} saved")
            elapsed = round(time.monotonic() - t0, 3)
            return RunResult(EXIT_INTERRUPTED, execution_id, "completed", saved, elapsed, "interrupted")
        written, problems = saving.result()
        elapsed = round(time.monotonic() - t0, 3)
        for problem in problems:
            error(problem)
        code = EXIT_FAILED if problems else EXIT_OK
        return RunResult(code, execution_id, "completed", written, elapsed, "; ".join(problems))
    except asyncio.CancelledError:
        # Ctrl-C where our handler could not be installed: asyncio.run cancels us; tell the server first.
        if execution_id is not None and view is not None:
            await _interrupt(backend, execution_id, view)
        raise
    finally:
        if hooked:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
        with contextlib.suppress(Exception):
            await backend.close()


def _report(result: RunResult, as_json: bool) -> None:
    if as_json:
        doc: dict[str, Any] = {
            "execution_id": result.execution_id,
            "status": result.status,
            "outputs": result.outputs,
            "elapsed": result.elapsed,
        }
        if result.error:
            doc["error"] = result.error
        print(json.dumps(doc, ensure_ascii=False))
    else:
        for item in result.outputs:
            print(item["path"])
    sys.stdout.flush()


def handle(args: argparse.Namespace) -> int:
    path = Path(args.file)
    gateway_id = gateway_workflow_id(args.file)
    data: bytes | None = None
    if gateway_id is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            error(f"{path}: cannot read the file: {exc.strerror or exc}")
            return EXIT_UNAVAILABLE
    try:
        check_out_dir(Path(args.out))  # before anything is submitted, not after the run
        result = run_coroutine(_run(args, data, path, gateway_id))
    except Abort as exc:
        return exc.code
    except ValidationError as exc:  # the server refused the graph after our own check passed
        print_issues(exc, None)
        return EXIT_UNAVAILABLE
    except BackendError as exc:
        error(redact(describe(exc), token_of(args)))
        return EXIT_UNAVAILABLE
    except WorkflowError as exc:
        error(describe(exc))
        return EXIT_UNAVAILABLE
    except ComfyDeskError as exc:
        error(redact(describe(exc), token_of(args)))
        return EXIT_FAILED
    if result.code == EXIT_INTERRUPTED and not result.execution_id:
        return EXIT_INTERRUPTED
    if result.code in (EXIT_OK, EXIT_FAILED) or args.json or result.outputs:
        _report(result, args.json)
    return result.code
