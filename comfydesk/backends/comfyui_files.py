"""Files on a ComfyUI server: outputs read through `/view`, input images sent to `/upload/image` once per
content per session."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
from typing import Any, Protocol

import httpx

from comfydesk.backends.base import UploadedImage
from comfydesk.backends.comfyui_http import json_body
from comfydesk.core.errors import OutputUnavailable, ServerResponseError
from comfydesk.core.events import OutputRef

__all__ = ["ServerFiles"]


class Requester(Protocol):
    async def __call__(
        self, method: str, route: str, *, ok: tuple[int, ...] = (200,), api: bool = True, **kwargs: Any
    ) -> httpx.Response: ...


class ServerFiles:
    """Output downloads and input uploads over the backend's own HTTP requests."""

    def __init__(self, request: Requester) -> None:
        self._request = request
        self._uploads: dict[str, UploadedImage] = {}
        self._upload_locks: dict[str, asyncio.Lock] = {}

    async def fetch_output(self, ref: OutputRef) -> bytes:
        """The bytes of an output file (`/view`); OutputUnavailable when the server no longer has it."""
        if not ref.filename:
            raise OutputUnavailable(f"output of node {ref.node_id} is inline {ref.kind}, not a file")
        params = {"filename": ref.filename, "type": ref.type or "output", "subfolder": ref.subfolder}
        resp = await self._request("GET", "/view", params=params, ok=(200, 404))
        if resp.status_code == 404:
            where = f"{ref.subfolder}/{ref.filename}" if ref.subfolder else ref.filename
            raise OutputUnavailable(
                f"the server no longer has the {ref.type} file '{where}'",
                hint="Temporary outputs vanish when the server restarts; run the workflow again.",
            )
        return resp.content

    async def upload_image(
        self, data: bytes, filename: str, *, subfolder: str = "", overwrite: bool = False
    ) -> UploadedImage:
        """Upload an input image once per content (sha256) per session; repeats return the first answer."""
        digest = hashlib.sha256(data).hexdigest()
        lock = self._upload_locks.setdefault(digest, asyncio.Lock())
        async with lock:
            cached = self._uploads.get(digest)
            if cached is not None:
                return cached
            mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            resp = await self._request(
                "POST",
                "/upload/image",
                files={"image": (filename, data, mime)},
                data={"type": "input", "subfolder": subfolder, "overwrite": "true" if overwrite else "false"},
            )
            doc = json_body(resp, "POST /upload/image")
            if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
                raise ServerResponseError("POST /upload/image did not name the stored file", body=resp.text)
            subfolder_back = str(doc.get("subfolder") or "")
            uploaded = UploadedImage(doc["name"], subfolder_back, str(doc.get("type") or "input"))
            self._uploads[digest] = uploaded
            return uploaded
