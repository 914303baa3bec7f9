"""The `/api/v1/comfyui` answers that are not plain data: error envelopes as typed errors, 429 waits.

The error classes below extend `comfydesk.core.errors` for answers only a gateway gives::

    BackendError
     ├── ServerUnreachable
     │    └── BackendUnavailable     503 backend_unavailable: the gateway is up, no ComfyUI machine is
     ├── AuthenticationError
     │    └── TokenRejected          401 unauthorized: no token, an unknown or a revoked one
     ├── ServerResponseError
     │    └── GatewayError           any other error envelope (`code`, `errors` kept)
     │         └── GatewayExecutionError   422 execution_error: ComfyUI refused the graph
     └── RateLimited                 429 rate_limited, still after retrying as Retry-After said

A 422 `validation_error` becomes `comfydesk.core.errors.ValidationError`, one issue per error.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from comfydesk.backends.error_text import quote_body
from comfydesk.core.errors import (
    AuthenticationError,
    BackendError,
    ComfyDeskError,
    ServerResponseError,
    ServerUnreachable,
    ValidationError,
    ValidationIssue,
)

__all__ = [
    "API_PREFIX",
    "BackendUnavailable",
    "GatewayError",
    "GatewayExecutionError",
    "RateLimited",
    "TokenRejected",
    "data_of",
    "error_from_response",
    "execution_of",
    "is_gateway_envelope",
    "retry_after_seconds",
    "validation_issues",
]

API_PREFIX = "/api/v1/comfyui"
DEFAULT_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 300.0  # a server asking for more is misconfigured; we still come back, just sooner
_NODE_RE = re.compile(r"node '([^']*)'")
_INPUT_RE = re.compile(r"input '([^']*)'")


# --------------------------------------------------------------------------------------------------------
# Errors


class TokenRejected(AuthenticationError):
    """401 from a gateway: the token is missing, unknown or revoked."""

    def __init__(self, url: str, *, token_given: bool, status: int = 401) -> None:
        super().__init__(url, status)
        if token_given:
            self.message = f"token rejected by the comfydesk gateway at {url} (HTTP {status})"
            self.hint = "The token may be mistyped or revoked; ask the gateway's admin for a new one."
        else:
            self.message = f"token rejected: the comfydesk gateway at {url} needs a token and none was given"
            self.hint = "Ask the gateway's admin for a token and add it to the connection."
        self.args = (self.message,)


class BackendUnavailable(ServerUnreachable):
    """503 backend_unavailable: the gateway answers, but none of its ComfyUI machines can take work."""

    def __init__(self, url: str, server_message: str = "") -> None:
        cause = "the gateway has no healthy ComfyUI machine to run on (backend_unavailable)"
        if server_message:
            cause += f": {server_message}"
        super().__init__(url, cause)
        self.hint = (
            "Try again in a moment; if it lasts, ask the gateway's admin to check its ComfyUI machines."
        )


class GatewayError(ServerResponseError):
    """An error envelope from the gateway; `code` is the first error's code, `errors` all of them."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str = "",
        errors: Sequence[Mapping[str, Any]] = (),
        body: str = "",
        hint: str = "",
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.code = code
        self.errors = tuple(dict(e) for e in errors)
        self.hint = hint
        lines = [_error_line(e) for e in self.errors]
        if lines:
            self.details = "\n".join(lines)


class GatewayExecutionError(GatewayError):
    """422 execution_error: the gateway handed the graph to ComfyUI, which refused it."""


class RateLimited(BackendError):
    """The gateway kept answering 429 after we waited as long as it asked, several times."""


def _error_line(err: Mapping[str, Any]) -> str:
    text = f"{err.get('code') or 'error'}: {err.get('message') or ''}".rstrip(": ")
    details = err.get("details")
    return f"{text} ({details})" if details else text


def _envelope(body: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def is_gateway_envelope(doc: Any) -> bool:
    """True for `{"status": "success", "data": ...}` and `{"status": "error", "message"|"errors": ...}`."""
    if not isinstance(doc, dict):
        return False
    if doc.get("status") == "success":
        return isinstance(doc.get("data"), dict)
    if doc.get("status") == "error":
        return isinstance(doc.get("errors"), list) or isinstance(doc.get("message"), str)
    return False


def _errors_of(doc: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    raw = doc.get("errors") if doc else None
    return [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []


def validation_issues(errors: Sequence[Mapping[str, Any]]) -> list[ValidationIssue]:
    """One issue per `validation_error`, placed by its `details` (`node 'x' input 'y'`, `input 'y'`).

    The field key follows the form's: `NODE.input` for a node input, the placeholder name for an execute
    input. Details that name neither stay in the message, so nothing the server said is lost."""
    issues: list[ValidationIssue] = []
    for err in errors:
        message = str(err.get("message") or "invalid").strip()
        details = str(err.get("details") or "").strip()
        node = _NODE_RE.search(details)
        inp = _INPUT_RE.search(details)
        node_id = node.group(1) if node else ""
        input_name = inp.group(1) if inp else None
        if details and not (node or inp):
            message = f"{message} ({details})"
        field_key = None
        if input_name is not None:
            field_key = f"{node_id}.{input_name}" if node_id else input_name
        issues.append(
            ValidationIssue(
                node_id=node_id,
                message=message,
                kind=str(err.get("code") or "validation_error"),
                input_name=input_name,
                field_key=field_key,
            )
        )
    return issues


def error_from_response(status: int, body: str, *, url: str, what: str, token_given: bool) -> ComfyDeskError:
    """The typed error for a gateway answer that is not a success (`body` already scrubbed of secrets)."""
    doc = _envelope(body)
    errors = _errors_of(doc)
    code = str(errors[0].get("code") or "") if errors else ""
    head = str(doc.get("message") or "") if doc else ""
    first = str(errors[0].get("message") or "") if errors else ""
    if status == 401:
        return TokenRejected(url, token_given=token_given, status=status)
    if status == 503 or code == "backend_unavailable":
        return BackendUnavailable(url, first or head)
    if status == 422 and code == "validation_error":
        exc = ValidationError(
            validation_issues([e for e in errors if e.get("code") == "validation_error"] or errors),
            message=f"{what} failed",
        )
        exc.details = "\n".join(_error_line(e) for e in errors)
        return exc
    if status == 422 and code == "execution_error":
        detail = str(errors[0].get("details") or "") if errors else ""
        said = first or head or "ComfyUI refused the workflow"
        return GatewayExecutionError(
            f"the workflow could not run: {said}" + (f" ({detail})" if detail and detail not in said else ""),
            status=status,
            code=code,
            errors=errors,
            body=body,
            hint="ComfyUI on the gateway refused the graph; the details name the node at fault.",
        )
    if doc is None or not is_gateway_envelope(doc):
        text = quote_body(body)
        return ServerResponseError(
            f"{what} failed: the gateway answered HTTP {status} ({text})", status=status, body=body
        )
    hints = {
        403: "Only the workflow's owner or an admin may change it.",
        404: "It may have been deleted, or (for an image) kept for a limited time only.",
        413: "The request is larger than the gateway accepts.",
        500: "The gateway hit an internal error; its admin can find the cause in its log.",
    }
    return GatewayError(
        f"{what} failed: {first or head or f'HTTP {status}'}",
        status=status,
        code=code,
        errors=errors,
        body=body,
        hint=hints.get(status, ""),
    )


def data_of(body: bytes | str, what: str) -> dict[str, Any]:
    """`data` of a success envelope, or ServerResponseError naming what was asked."""
    try:
        doc = json.loads(body)
    except ValueError:
        text = body[:2000].decode("utf-8", "replace") if isinstance(body, bytes) else body[:2000]
        raise ServerResponseError(f"{what}: the gateway did not answer JSON", body=text) from None
    if not is_gateway_envelope(doc) or doc.get("status") != "success":
        raise ServerResponseError(
            f"{what}: the answer is not a gateway success envelope", body=str(doc)[:2000]
        )
    data: dict[str, Any] = doc["data"]
    return data


def execution_of(data: Mapping[str, Any], what: str) -> dict[str, Any]:
    execution = data.get("execution")
    if not isinstance(execution, dict) or "id" not in execution:
        raise ServerResponseError(f"{what}: the answer carries no execution", body=str(data)[:2000])
    return execution


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float:
    """How long a 429 asks us to wait: `Retry-After` (seconds or an HTTP date), else X-RateLimit-Reset."""
    now = time.time() if now is None else now
    value = (headers.get("retry-after") or headers.get("Retry-After") or "").strip()
    wait: float | None = None
    if value:
        try:
            wait = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                wait = when.timestamp() - now
            except (TypeError, ValueError, IndexError):
                wait = None
    if wait is None:
        reset = (headers.get("x-ratelimit-reset") or headers.get("X-RateLimit-Reset") or "").strip()
        try:
            wait = float(reset) - now if reset else None
        except ValueError:
            wait = None
    if wait is None or wait != wait:  # missing or NaN
        return DEFAULT_RETRY_AFTER
    return min(MAX_RETRY_AFTER, max(0.0, wait))
