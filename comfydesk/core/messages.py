"""The catalogue of what the user reads when something goes wrong: one plain sentence per kind of error.

Every error a user can meet has a short text written for an artist (what happened, what to do) and keeps the
technical part (exception type, node, the server's raw message, traceback) for a "Details" box. Kinds come
from three places:

- comfydesk's own errors (`comfydesk.core.errors`), keyed by class name (`ServerUnreachable`, ...);
- problems in a graph or form (`ValidationIssue.kind`: ours from `core.validate` and ComfyUI's
  `node_errors` types such as `value_not_in_list`, `custom_validation_failed`);
- a node failing while the server runs the graph (ComfyUI's `execution_error`), keyed by what failed:
  a broken image, out of memory, a missing file or model, anything else.

Server-side paths never reach the short text: `short_paths` cuts every path down to its file name.
`CATALOGUE` holds every sentence; the functions below pick one and fill in the names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from comfydesk.core.errors import ComfyDeskError, ValidationError, ValidationIssue, WorkflowError
from comfydesk.core.events import FailureInfo

__all__ = [
    "CATALOGUE",
    "SIGN_IN_REFUSED",
    "TOKEN_HINT",
    "TOKEN_REJECTED",
    "Message",
    "for_connection_lost",
    "for_disconnect",
    "for_error",
    "for_exception",
    "for_failure",
    "for_issue",
    "for_validation",
    "short_paths",
]


@dataclass(frozen=True, slots=True)
class Message:
    """What to show: a short title, the artist's sentence(s), and the technical details behind "Details"."""

    title: str
    text: str
    details: str = ""


#: A gateway refused the token: the title (also the connection status) and what to do, said together as
#: `CATALOGUE["TokenRejected"]`.
TOKEN_REJECTED = "The server rejected the token"
TOKEN_HINT = "Check the token in the connection profile, or ask the server's admin for a new one."
#: Another server refused the password or token: the title (its sentence: CATALOGUE["AuthenticationError"]).
SIGN_IN_REFUSED = "The server refused the sign-in"

#: kind -> the sentence shown. `{name}`, `{node}`, `{limit}`, `{what}` are filled in where the kind has them.
CATALOGUE: dict[str, str] = {
    # -- problems with a value (shown on the field) ---------------------------------------------------------
    "missing_image": "The image “{name}” isn't on the server. Pick another image, or choose the file again "
    "to upload it.",
    "missing_model": "The model “{name}” isn't installed on the server. Pick one from the list, or install "
    "it on the server.",
    # A model field's mark when the missing-pieces panel above the form says the rest (folder, link).
    "missing_model_marker": "Not installed on the server: see the list above.",
    "value_not_in_list": "“{name}” isn't one of the choices. Pick one from the list.",
    "value_bigger_than_max": "That's too large: the most allowed is {limit}. Lower it and run again.",
    "value_smaller_than_min": "That's too small: the least allowed is {limit}. Raise it and run again.",
    "invalid_input_type": "This needs {what}. Change the value and run again.",
    "required_input_missing": "This needs a value. Fill it in, or reset it to its default.",
    "broken_link": "The workflow's wiring is broken at “{node}”. Fix the connection in ComfyUI, then open "
    "the workflow again.",
    "unknown_node_type": "The server doesn't have the “{name}” node. Install the custom nodes that "
    "provide it on the server, or pick another workflow.",
    "prompt_no_outputs": "This workflow doesn't save or show any image, so there is nothing to run. Add a "
    "Save Image or Preview Image node in ComfyUI.",
    "invalid_value": "This value wasn't accepted. Check it and run again.",
    "validation_on_fields": "Some settings need a look before this can run. They are marked in red in "
    "the form.",
    # -- comfydesk's own errors -----------------------------------------------------------------------------
    "ServerUnreachable": "Can't reach the server. Check that ComfyUI is running and that the address is "
    "right, then try again.",
    "BackendUnavailable": "The server answers, but none of its ComfyUI machines can take work right now. "
    "Try again in a moment.",
    "AuthenticationError": "The server didn't accept your password or token. Check it in the connection "
    "profile.",
    "TokenRejected": f"{TOKEN_REJECTED}. {TOKEN_HINT}",
    "RateLimited": "The server is busy and asked us to slow down. Wait a minute and try again.",
    "ServerResponseError": "The server gave an answer ComfyDesk didn't expect. Try again; if it keeps "
    "happening, copy the details into a bug report.",
    "OutputUnavailable": "The server no longer has this image. Run the workflow again to make it anew.",
    "ExecutionInterrupted": "The run was stopped before it finished.",
    "UnsafeInputError": "This file was refused because it looks unsafe (far too large once opened, or an odd "
    "name). Use another file.",
    "WorkflowFormatError": "This file isn't a ComfyUI workflow ComfyDesk can read. Save or export it again "
    "from ComfyUI.",
    "UnknownNodeTypeError": "This workflow uses nodes the server doesn't have ({name}). Install them on the "
    "server, or pick another workflow.",
    "ConversionError": "This workflow couldn't be prepared for running. Export it from ComfyUI with "
    "“Export (API)”, then open it again.",
    "CatalogError": "The server's list of nodes couldn't be read. Reconnect; if it keeps happening, update "
    "ComfyUI.",
    "unexpected": "Something went wrong inside ComfyDesk. Copy the details into a bug report.",
    # -- a node failing while the server runs the graph -----------------------------------------------------
    "broken_image": "The image “{name}” couldn't be opened: it may be damaged or not an image. Pick another "
    "image and run again.",
    "out_of_memory": "The server ran out of memory in “{node}”. Try a smaller size or batch, or free memory "
    "on the server, then run again.",
    "file_missing_at_run": "“{node}” needs the file “{name}”, which isn't on the server. Pick another file "
    "or put it back on the server, then run again.",
    "node_failed": "“{node}” stopped with an error: {what}. Check its settings and run again.",
    "node_failed_quiet": "“{node}” stopped with an error. Check its settings and run again.",
    "no_thumbnail": "No preview: this image couldn't be opened. It may be damaged; the file is kept.",
    # -- the connection -------------------------------------------------------------------------------------
    "connection_lost": "Lost the connection to the server. ComfyDesk is reconnecting; the run carries on.",
    "no_answer": "Nothing answered at {name}. Check that ComfyUI is running there and that the address is "
    "right.",
    "connection_ended": "The connection to the server ended. Press Retry (F5) to connect again.",
    "not_connected": "Not connected to a server.",
}

# comfydesk's error classes, most specific first (a TokenRejected is an AuthenticationError).
_CLASS_KINDS = (
    "TokenRejected",
    "RateLimited",
    "BackendUnavailable",
    "ServerUnreachable",
    "AuthenticationError",
    "OutputUnavailable",
    "ServerResponseError",
    "ExecutionInterrupted",
    "UnsafeInputError",
    "UnknownNodeTypeError",
    "ConversionError",
    "WorkflowFormatError",
    "CatalogError",
)
_ALIASES = {"GatewayError": "ServerResponseError"}

_LINK_KINDS = frozenset(
    {
        "link_to_missing_node",
        "bad_output_index",
        "bad_linked_input",
        "link_type_mismatch",
        "link_required",
        "exception_during_validation",
        "return_type_mismatch",
    }
)
_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
_MODEL_EXT = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")
_MODEL_INPUTS = (
    "ckpt",
    "lora",
    "vae",
    "clip",
    "unet",
    "control_net",
    "controlnet",
    "model",
    "upscale",
    "style",
)

# A path on some machine: /a/b/c.png, C:\a\b\c.png, file:///a/b. URLs (http://host/x) are left alone.
_POSIX_PATH = re.compile(r"(?<![\w.:/\\])(?:file://)?/(?:[^\s'\"/:<>|,;()\[\]]+/)+([^\s'\"/<>|,;()\[\]]*)")
_WIN_PATH = re.compile(r"(?<![\w])[A-Za-z]:\\(?:[^\s'\"\\<>|,;()\[\]]+\\)*([^\s'\"\\<>|,;()\[\]]*)")
_EXC_NAME = re.compile(r"\b(?:[A-Z][A-Za-z0-9]*\.)*[A-Z][A-Za-z0-9]*(?:Error|Exception|Interrupt)\b:?\s*")


def short_paths(text: str) -> str:
    """`text` with every file-system path replaced by its last part (a file or folder name)."""

    def tail(match: re.Match[str]) -> str:
        name = match.group(1)
        if name:
            return name
        parts = [p for p in re.split(r"[\\/]", match.group(0)) if p]
        return parts[-1] if parts else ""

    return _WIN_PATH.sub(tail, _POSIX_PATH.sub(tail, text))


def _clean(text: str, *, limit: int = 160) -> str:
    """A server's message fit for the short text: no paths, no exception names, one line, not too long."""
    text = short_paths(text)
    text = _EXC_NAME.sub("", text)
    text = " ".join(text.split()).strip(" .:;-")
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _say(kind: str, **names: object) -> str:
    return CATALOGUE[kind].format(**{k: short_paths(str(v)) for k, v in names.items()})


def _number(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1).rstrip(".") if match else None


def _is_image(name: str, input_name: str | None) -> bool:
    return name.lower().endswith(_IMAGE_EXT) or (input_name or "").lower() in ("image", "mask")


def _is_model(name: str, input_name: str | None) -> bool:
    if name.lower().endswith(_MODEL_EXT):
        return True
    key = (input_name or "").lower()
    return key.endswith("_name") and any(word in key for word in _MODEL_INPUTS)


def _received_name(issue: ValidationIssue) -> str:
    if isinstance(issue.received, str) and issue.received:
        return issue.received
    # ComfyUI: "image - Invalid image file: photo.png", "upscale_method: 'x' not in [...]";
    # ours: "got the text 'x'"
    quoted = re.search(r"(?:got the text |: )'([^']*)'", issue.message)
    if quoted:
        return quoted.group(1)
    tail = re.search(r"(?:Invalid image file|not found|missing):\s*(\S+)", issue.message, re.IGNORECASE)
    return tail.group(1) if tail else ""


def _wanted(message: str) -> str:
    low = message.lower()
    if "whole number" in low or "int value" in low or " int" in low:
        return "a whole number"
    if "number" in low or "float" in low:
        return "a number"
    if "on or off" in low or "boolean" in low:
        return "on or off"
    if "image" in low:
        return "an image"
    return "different text"


def for_issue(issue: ValidationIssue) -> str:
    """The sentence for one problem with a value, written to sit under its field."""
    kind = issue.kind
    name = _received_name(issue)
    if kind in ("value_not_in_list", "custom_validation_failed") or (
        kind == "invalid_input_type" and "image" in issue.message.lower() and name
    ):
        if name and _is_image(name, issue.input_name):
            return _say("missing_image", name=name)
        if name and _is_model(name, issue.input_name):
            return _say("missing_model", name=name)
        if name:
            return _say("value_not_in_list", name=_clean(name, limit=60))
        return _say("invalid_value")
    if kind == "value_bigger_than_max":
        limit = _number(r"(?:at most|max of)\s+(-?[\d.]+)", issue.message)
        return _say(kind, limit=limit) if limit else _say("invalid_value")
    if kind == "value_smaller_than_min":
        limit = _number(r"(?:at least|min of)\s+(-?[\d.]+)", issue.message)
        return _say(kind, limit=limit) if limit else _say("invalid_value")
    if kind == "invalid_input_type":
        return _say(kind, what=_wanted(issue.message))
    if kind == "required_input_missing":
        return _say(kind)
    if kind in _LINK_KINDS:
        return _say("broken_link", node=issue.node_title or f"node {issue.node_id}")
    if kind in ("unknown_node_type", "invalid_prompt"):
        node_type = _number(r"node (?:type )?'?([\w.\- ]+?)'? does not exist", issue.message) or _number(
            r"no node type '([^']+)'", issue.message
        )
        return _say("unknown_node_type", name=node_type or issue.node_title or "?")
    if kind in ("prompt_no_outputs", "no_prompt"):
        return _say("prompt_no_outputs")
    return _say("invalid_value")


def _where(issue: ValidationIssue) -> str:
    label = (issue.input_name or "").replace("_", " ").strip().capitalize()
    parts = [p for p in (issue.node_title, label) if p]
    return " › ".join(parts)


def for_validation(issues: Sequence[ValidationIssue], *, on_fields: bool) -> Message:
    """The banner for a refused run: one line when every issue is on a field, else the first loose one."""
    details = "\n".join(short_paths(i.describe()) for i in issues)
    if on_fields or not issues:
        return Message("The workflow was not run", _say("validation_on_fields"), details)
    loose = issues[0]
    where = _where(loose)
    text = for_issue(loose)
    more = len(issues) - 1
    tail = f" ({more} more in the details.)" if more else ""
    return Message("The workflow was not run", f"{where}: {text}{tail}" if where else text + tail, details)


def for_error(
    *,
    exception_type: str,
    message: str,
    hint: str = "",
    details: str = "",
    what: str = "",
    expected: bool = True,
) -> Message:
    """The short text for an error that reached the window as values (an `AppError`'s fields)."""
    technical = "\n".join(
        p for p in (f"{exception_type}: {message}" if exception_type else message, hint, details) if p
    )
    title = what or "Something went wrong"
    if not expected:
        return Message(title, _say("unexpected"), technical)
    kind = _ALIASES.get(exception_type, exception_type)
    if kind == "UnknownNodeTypeError":
        names = _number(r"unknown node types? (.+?)(?: \(|$)", message) or "?"
        return Message(title, _say(kind, name=names), technical)
    if kind in CATALOGUE and kind != "ComfyDeskError":
        return Message(title, _say(kind), technical)
    # A plain ComfyDeskError: its message and hint are already written for a person; only clean them.
    text = _clean(message, limit=240)
    text = text[:1].upper() + text[1:]
    if text and not text.endswith((".", "!", "?", "…")):
        text += "."
    full = f"{text} {short_paths(hint)}".strip() if hint else text
    return Message(title, full or _say("unexpected"), technical)


def for_exception(exc: BaseException, *, what: str = "") -> Message:
    """The short text for an exception (the most specific catalogue entry of its class)."""
    if isinstance(exc, ValidationError):
        return for_validation(exc.issues, on_fields=all(i.field_key for i in exc.issues))
    if not isinstance(exc, ComfyDeskError):
        return for_error(exception_type=type(exc).__name__, message=str(exc), what=what, expected=False)
    names = [cls.__name__ for cls in type(exc).__mro__]
    kind = next((k for k in _CLASS_KINDS if k in names), "ComfyDeskError")
    message, details = exc.message, exc.details
    if isinstance(exc, WorkflowError) and exc.source:  # "<path>: <what>": the path goes to the details
        message = message.removeprefix(f"{exc.source}: ")
        details = "\n".join(p for p in (f"File: {exc.source}", details) if p)
    return for_error(
        exception_type=kind if kind != "ComfyDeskError" else type(exc).__name__,
        message=message,
        hint=exc.hint,
        details=details,
        what=what,
    )


def for_failure(failure: FailureInfo, *, node_title: str = "") -> Message:
    """The short text for a node that failed while the server ran the graph; the traceback goes in details."""
    node = node_title or failure.node_type or (f"node {failure.node_id}" if failure.node_id else "A step")
    where = node_title or failure.node_type or ""
    if failure.node_id:
        where = f"{where} (#{failure.node_id})" if where else f"node #{failure.node_id}"
    head = (
        f"{failure.exception_type}: {failure.message.strip()}" if failure.exception_type else failure.message
    )
    details = "\n".join(
        p for p in (f"Node: {where}" if where else "", head.strip(), "".join(failure.traceback)) if p
    )
    title = f"The run stopped at “{node}”" if failure.node_id or node_title else "The run stopped"
    exc, msg = failure.exception_type, failure.message
    low = f"{exc} {msg}".lower()
    file_name = _file_in(msg)
    if "unidentifiedimage" in low or "cannot identify image file" in low or "image file is truncated" in low:
        return Message(title, _say("broken_image", name=file_name or "?"), details.rstrip())
    if "outofmemory" in low or "out of memory" in low or exc == "MemoryError":
        return Message(title, _say("out_of_memory", node=node), details.rstrip())
    if exc == "FileNotFoundError" or "no such file" in low:
        if file_name and _is_model(file_name, None):
            return Message(title, _say("missing_model", name=file_name), details.rstrip())
        return Message(title, _say("file_missing_at_run", node=node, name=file_name or "?"), details.rstrip())
    what = _clean(msg)
    kind = "node_failed" if what else "node_failed_quiet"
    return Message(title, _say(kind, node=node, what=what), details.rstrip())


_REACH = re.compile(r"cannot reach (\w+://[^\s/:]+(?::\d+)?)")


def for_disconnect(reason: str) -> Message:
    """What to say once the connection is down for good, from the status's raw `reason` (kept as details).

    The title is short enough for the status bar ("Disconnected: <title>"); the text is for the panel."""
    raw = reason.strip()
    details = short_paths(raw) if raw not in ("", "not connected", "closed") else ""
    if raw.startswith(TOKEN_REJECTED):
        return Message(TOKEN_REJECTED, TOKEN_HINT, details)
    if "refused the credentials" in raw:
        return Message(SIGN_IN_REFUSED, _say("AuthenticationError"), details)
    reach = _REACH.search(raw)
    if reach:
        host = urlsplit(reach.group(1)).netloc or reach.group(1)
        return Message(f"Can't reach {host}", _say("no_answer", name=host), details)
    if not details:
        return Message("Not connected", _say("not_connected"), "")
    return Message("Connection lost", _say("connection_ended"), details)


def for_connection_lost(reason: str = "") -> Message:
    """The short text while the server's connection is lost mid-run (the app reconnects on its own)."""
    return Message("Connection lost", _say("connection_lost"), short_paths(reason))


def _file_in(message: str) -> str:
    """The file name a server's message is about ('/srv/x/input/bad.png' -> 'bad.png'), or ""."""
    for quoted in re.findall(r"['\"]([^'\"]+)['\"]", message):
        if "/" in quoted or "\\" in quoted or "." in quoted:
            return short_paths(quoted).strip()
    match = _POSIX_PATH.search(message) or _WIN_PATH.search(message)
    return match.group(1) if match else ""
