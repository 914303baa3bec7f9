"""The typed errors of comfydesk. Every error carries what a user needs to act on it.

The tree::

    ComfyDeskError                 base; `message` (one sentence), `hint` (what to do), `details` (extra text)
     ├── CatalogError              an object_info / node list document is unusable as a whole
     ├── WorkflowError             a workflow cannot be read; names the file (`source`) when there is one
     │    ├── WorkflowFormatError  not JSON, not a ComfyUI workflow, or a structurally broken graph
     │    ├── UnknownNodeTypeError node types the server does not know (`node_types`)
     │    └── ConversionError      a UI-format graph cannot be turned into an API graph
     ├── ValidationError           a graph or form does not fit the node definitions; `issues` lists each
     │                             problem with node id, node title, input and a human sentence
     ├── BackendError              talking to a server went wrong
     │    ├── ServerUnreachable    connection refused, DNS, TLS, timeout; names the URL and the cause
     │    ├── AuthenticationError  401/403: the token or password was refused
     │    ├── ServerResponseError  an unexpected status or a body that is not what the protocol says
     │    └── OutputUnavailable    an output file the server no longer has (404 on /view)
     ├── ExecutionFailed           a node raised while the server ran the graph: node, exception, traceback
     ├── ExecutionInterrupted      the run was interrupted (by us or by someone else)
     └── UnsafeInputError          hostile input refused: decompression bombs, path tricks in file names

`ComfyDeskError.user_text()` is the one rendering used by the CLI and the window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "AuthenticationError",
    "BackendError",
    "CatalogError",
    "ComfyDeskError",
    "ConversionError",
    "ExecutionFailed",
    "ExecutionInterrupted",
    "OutputUnavailable",
    "ServerResponseError",
    "ServerUnreachable",
    "UnknownNodeTypeError",
    "UnsafeInputError",
    "ValidationError",
    "ValidationIssue",
    "WorkflowError",
    "WorkflowFormatError",
]


class ComfyDeskError(Exception):
    """Base of every error comfydesk raises on purpose."""

    def __init__(self, message: str, *, hint: str = "", details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def user_text(self) -> str:
        """Message and hint, as shown to a user (never contains secrets)."""
        if not self.hint:
            return self.message
        sep = " " if self.message.rstrip().endswith((".", "!", "?", ":")) else ". "
        return f"{self.message.rstrip()}{sep}{self.hint}"

    def __str__(self) -> str:
        return self.message


class CatalogError(ComfyDeskError):
    """The node definition document as a whole cannot be used."""


class WorkflowError(ComfyDeskError):
    """A workflow cannot be read or used."""

    def __init__(self, message: str, *, source: str | None = None, hint: str = "", details: str = "") -> None:
        full = f"{source}: {message}" if source else message
        super().__init__(full, hint=hint, details=details)
        self.source = source


class WorkflowFormatError(WorkflowError):
    """Not JSON, not a ComfyUI workflow, or a structurally broken graph."""


class UnknownNodeTypeError(WorkflowError):
    """The workflow uses node types the catalog does not have."""

    def __init__(self, node_types: Iterable[str], *, source: str | None = None, where: str = "") -> None:
        self.node_types = tuple(sorted(set(node_types)))
        names = ", ".join(self.node_types)
        noun = "node type" if len(self.node_types) == 1 else "node types"
        msg = f"unknown {noun} {names}" + (f" ({where})" if where else "")
        super().__init__(
            msg,
            source=source,
            hint="Install the custom nodes that provide them on the server, or pick another workflow.",
        )


class ConversionError(WorkflowError):
    """A UI-format graph cannot be turned into an API graph."""


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem in a graph or a form, placed on its node and input."""

    node_id: str
    message: str
    kind: str = "invalid"
    node_title: str = ""
    input_name: str | None = None
    field_key: str | None = None
    received: object = None

    def describe(self) -> str:
        if not self.node_id and not self.input_name:
            return self.message  # about the graph as a whole (no output node, bad prompt)
        where = f"node {self.node_id}" if self.node_id else ""
        if self.node_title:
            where += f" ({self.node_title})" if where else self.node_title
        if self.input_name:
            where += f", input '{self.input_name}'" if where else f"input '{self.input_name}'"
        return f"{where}: {self.message}"


class ValidationError(ComfyDeskError):
    """A graph or form does not fit the node definitions; `issues` holds every problem."""

    def __init__(self, issues: Sequence[ValidationIssue], *, message: str = "") -> None:
        self.issues = tuple(issues)
        n = len(self.issues)
        head = message or f"{n} problem{'s' if n != 1 else ''} in the workflow"
        first = f": {self.issues[0].describe()}" if self.issues else ""
        more = f" (and {n - 1} more)" if n > 1 else ""
        super().__init__(head + first + more, hint="Fix the marked fields and run again.")

    def lines(self) -> list[str]:
        return [i.describe() for i in self.issues]


class BackendError(ComfyDeskError):
    """Talking to a server went wrong."""


class ServerUnreachable(BackendError):
    """The server did not answer: refused, DNS, TLS or timeout."""

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(
            f"cannot reach {url}: {cause}",
            hint="Check that the server is running and the address is right.",
        )
        self.url = url
        self.cause = cause


class AuthenticationError(BackendError):
    """The server refused our credentials."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(
            f"{url} refused the credentials (HTTP {status})",
            hint="Check the token or password in the connection profile.",
        )
        self.url = url
        self.status = status


class ServerResponseError(BackendError):
    """An unexpected status code or body."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message, details=body[:2000])
        self.status = status
        self.body = body


class OutputUnavailable(BackendError):
    """The server no longer has an output file."""


class ExecutionFailed(ComfyDeskError):
    """A node raised while the server ran the graph."""

    def __init__(
        self,
        *,
        node_id: str | None,
        node_type: str | None,
        exception_type: str,
        exception_message: str,
        traceback: Sequence[str] = (),
    ) -> None:
        where = f"node {node_id} ({node_type})" if node_id else "the server"
        super().__init__(
            f"{where} failed: {exception_type}: {exception_message.strip()}",
            details="".join(traceback),
        )
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type
        self.exception_message = exception_message
        self.traceback = tuple(traceback)


class ExecutionInterrupted(ComfyDeskError):
    """The run was interrupted before it finished."""


class UnsafeInputError(ComfyDeskError):
    """Hostile input refused (decompression bomb, path trick in a server-given file name)."""
