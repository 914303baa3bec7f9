"""Errors as the API answers them: `ApiError` carries the HTTP status and the envelope's items."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.responses import JSONResponse

__all__ = ["ApiError", "error_response", "not_found"]


class ApiError(Exception):
    """A non-success answer: `{"status": "error", "message", "errors": [{code, message, details}]}`."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: Iterable[Mapping[str, Any]],
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = [
            {k: v for k, v in e.items() if v is not None and k in ("code", "message", "details")}
            for e in errors
        ]
        self.headers = dict(headers or {})

    @classmethod
    def single(
        cls, status: int, code: str, message: str, item_message: str, *, details: str | None = None
    ) -> ApiError:
        return cls(status, message, [{"code": code, "message": item_message, "details": details}])

    def body(self) -> dict[str, Any]:
        return {"status": "error", "message": self.message, "errors": self.errors}


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def not_found(kind: str, ident: object) -> ApiError:
    """404 as the spec writes it: "Workflow not found" / "Workflow with id 1 not found"."""
    return ApiError.single(404, "not_found", f"{kind} not found", f"{kind} with id {ident} not found")
