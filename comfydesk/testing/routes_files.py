"""File routes of the fake ComfyUI: /view, /upload/image, userdata (v1, v2), settings, static catalogues
and template files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path
from urllib.parse import unquote

from PIL import Image
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from comfydesk.testing.app import FakeServer
from comfydesk.testing.routes import json_response

__all__ = ["ROUTES", "UNMIRRORED"]


def _fake(request: Request) -> FakeServer:
    fake: FakeServer = request.app.state.fake
    return fake


def _within(root: Path, path: Path) -> bool:
    root_s, path_s = os.path.abspath(root), os.path.abspath(path)
    return os.path.commonpath((root_s, path_s)) == root_s


async def view(request: Request) -> Response:
    fake = _fake(request)
    query = request.query_params
    if "filename" not in query:
        return Response(status_code=404)
    filename = query["filename"]
    base: Path | None = None
    for suffix, kind in ((" [output]", "output"), (" [input]", "input"), (" [temp]", "temp")):
        if filename.endswith(suffix):
            filename, base = filename[: -len(suffix)], fake.dirs.for_type(kind)
    if not filename or filename[0] == "/" or ".." in filename:
        return Response(status_code=400)
    if base is None:
        base = fake.dirs.for_type(query.get("type", "output"))
    if base is None:
        return Response(status_code=400)
    if "subfolder" in query:
        full = base / query["subfolder"]
        if not _within(base, full):
            return Response(status_code=403)
        base = full
    filename = os.path.basename(filename)
    path = base / filename
    if not path.is_file():
        return Response(status_code=404)
    # A name with control characters (a hostile workflow can make one) cannot go into a header as it is.
    shown = "".join(c if " " <= c < "\x7f" or c > "\x9f" else f"%{ord(c):02X}" for c in filename)
    headers = {"Content-Disposition": f'filename="{shown}"'}
    if "preview" in query:
        parts = query["preview"].split(";")
        fmt = parts[0] if parts[0] in ("webp", "jpeg") and "a" not in query.get("channel", "") else "webp"
        quality = int(parts[-1]) if parts[-1].isdigit() else 90
        with Image.open(path) as img:
            out = img.convert("RGB") if fmt == "jpeg" or query.get("channel") == "rgb" else img.copy()
        buf = io.BytesIO()
        out.save(buf, format=fmt, quality=quality)
        return Response(buf.getvalue(), media_type=f"image/{fmt}", headers=headers)
    with fake.state.lock:
        fake.state.views += 1
    return FileResponse(path, headers=headers)


async def upload_image(request: Request) -> Response:
    fake = _fake(request)
    form = await request.form()
    try:
        image = form.get("image")
        if not isinstance(image, UploadFile):
            return Response(status_code=400)
        content = await image.read()
        kind = str(form.get("type") or "input")
        base = fake.dirs.for_type(kind) or fake.dirs.input
        kind = kind if fake.dirs.for_type(kind) else "input"
        filename = image.filename or ""
        if not filename:
            return Response(status_code=400)
        subfolder = str(form.get("subfolder", ""))
        folder = base / os.path.normpath(subfolder)
        path = folder / filename
        if not _within(base, path):
            return Response(status_code=400)
        folder.mkdir(parents=True, exist_ok=True)
        stem, ext = os.path.splitext(filename)
        overwrite = form.get("overwrite")
        duplicate = False
        if overwrite not in ("true", "1"):
            i = 1
            while path.exists():
                if hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(content).digest():
                    duplicate = True
                    break
                filename = f"{stem} ({i}){ext}"
                path = folder / filename
                i += 1
        if not duplicate:
            path.write_bytes(content)
        with fake.state.lock:
            fake.state.uploads += 1
        return json_response({"name": filename, "subfolder": subfolder, "type": kind})
    finally:
        await form.close()


def _user_root(fake: FakeServer) -> Path:
    root = fake.dirs.user / "default"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _user_path(fake: FakeServer, rel: str) -> Path | None:
    root = _user_root(fake)
    path = root / rel
    return path if rel and _within(root, path) else None


def _file_info(path: Path, base: Path) -> dict[str, object]:
    st = path.stat()
    rel = os.path.relpath(path, base).replace(os.sep, "/")
    return {"path": rel, "size": st.st_size, "modified": st.st_mtime, "created": st.st_ctime}


async def list_userdata(request: Request) -> Response:
    fake = _fake(request)
    query = request.query_params
    directory = query.get("dir", "")
    if not directory:
        return PlainTextResponse("Directory must be provided", status_code=400)
    path = _user_path(fake, directory)
    if path is None:
        return PlainTextResponse("Invalid directory", status_code=403)
    if not path.exists():
        return PlainTextResponse("Directory not found", status_code=404)
    recurse = query.get("recurse", "").lower() == "true"
    full_info = query.get("full_info", "").lower() == "true"
    split = query.get("split", "").lower() == "true"
    files = sorted(p for p in (path.rglob("*") if recurse else path.glob("*")) if p.is_file())
    results: list[object] = []
    for file in files:
        rel = os.path.relpath(file, path).replace(os.sep, "/")
        if full_info:
            results.append(_file_info(file, path))
        elif split:
            results.append([rel, *rel.split("/")])
        else:
            results.append(rel)
    return json_response(results)


async def list_userdata_v2(request: Request) -> Response:
    fake = _fake(request)
    rel = request.query_params.get("path", "").strip("/")
    root = _user_root(fake)
    path = root / rel if rel else root
    if not _within(root, path):
        return PlainTextResponse("Invalid path", status_code=403)
    if not path.is_dir():
        return PlainTextResponse("Path not found", status_code=404)
    entries: list[dict[str, object]] = []
    for current, dirs, files in os.walk(path):
        dirs.sort()
        for name in dirs:
            p = Path(current) / name
            entries.append(
                {"name": name, "path": os.path.relpath(p, root).replace(os.sep, "/"), "type": "directory"}
            )
        for name in sorted(files):
            p = Path(current) / name
            st = p.stat()
            entries.append(
                {
                    "name": name,
                    "path": os.path.relpath(p, root).replace(os.sep, "/"),
                    "type": "file",
                    "size": st.st_size,
                    "modified": st.st_mtime,
                }
            )
    return json_response(entries)


def _userdata_target(request: Request) -> tuple[str, str | None]:
    raw = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?", 1)[0]
    rest = raw.split("/userdata/", 1)[1]
    if "/move/" in rest:
        src, dest = rest.split("/move/", 1)
        return unquote(src), unquote(dest)
    return unquote(rest), None


async def userdata_file(request: Request) -> Response:
    fake = _fake(request)
    rel, dest_rel = _userdata_target(request)
    root = _user_root(fake)
    path = _user_path(fake, rel)
    if path is None:
        return Response(status_code=403)
    query = request.query_params
    overwrite = query.get("overwrite", "true") != "false"
    full_info = query.get("full_info", "false") == "true"
    if dest_rel is not None:
        if request.method != "POST":
            return Response(b"", status_code=404, media_type="application/octet-stream")
        dest = _user_path(fake, dest_rel)
        if dest is None:
            return Response(status_code=403)
        if not path.exists():
            return Response(status_code=404)
        if dest.exists() and not overwrite:
            return PlainTextResponse("File already exists", status_code=409)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)
        return json_response(
            _file_info(dest, root) if full_info else os.path.relpath(dest, root).replace(os.sep, "/")
        )
    if request.method == "GET":
        if not path.is_file():
            return Response(status_code=404)
        return FileResponse(path)
    if request.method == "DELETE":
        if not path.is_file():
            return Response(status_code=404)
        path.unlink()
        return Response(status_code=204)
    if path.exists() and not overwrite:
        return PlainTextResponse("File already exists", status_code=409)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(await request.body())
    return json_response(
        _file_info(path, root) if full_info else os.path.relpath(path, root).replace(os.sep, "/")
    )


def _settings_path(fake: FakeServer) -> Path:
    return _user_root(fake) / "comfy.settings.json"


def _settings(fake: FakeServer) -> dict[str, object]:
    path = _settings_path(fake)
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return data
    return {}


async def get_settings(request: Request) -> Response:
    return json_response(_settings(_fake(request)))


async def get_setting(request: Request) -> Response:
    return json_response(_settings(_fake(request)).get(request.path_params["setting_id"]))


async def post_settings(request: Request) -> Response:
    fake = _fake(request)
    settings = _settings(fake)
    body = json.loads(await request.body() or b"{}")
    if "setting_id" in request.path_params:
        settings[request.path_params["setting_id"]] = body
    elif isinstance(body, dict):
        settings.update(body)
    _settings_path(fake).write_text(json.dumps(settings, indent=4), encoding="utf-8")
    return Response(status_code=200)


async def templates_index(request: Request) -> Response:
    fake = _fake(request)
    return json_response([] if fake.config.demo else fake.capture("templates_index.json", []))


_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]*")


async def template_file(request: Request) -> Response:
    """`GET /templates/<name>.json`, a static file of the templates package on the real server.

    The fake serves the UI-format templates captured in `<captures>/workflows/ui/`; any other name is a
    404, as a static file server answers."""
    fake = _fake(request)
    name = request.path_params["name"]
    if fake.config.demo or fake.captures_dir is None or not _TEMPLATE_NAME.fullmatch(name):
        return Response(status_code=404)
    root = fake.captures_dir / "workflows" / "ui"
    path = root / f"{name}.json"
    if not _within(root, path) or not path.is_file():
        return Response(status_code=404)
    return FileResponse(path, media_type="application/json")


async def template_thumbnail(request: Request) -> Response:
    """`GET /templates/<name>-1.webp`: the thumbnails captured in `<captures>/templates/`, else 404."""
    fake = _fake(request)
    name = request.path_params["name"]
    if fake.config.demo or fake.captures_dir is None or not _TEMPLATE_NAME.fullmatch(name):
        return Response(status_code=404)
    root = fake.captures_dir / "templates"
    path = root / f"{name}.webp"
    if not _within(root, path) or not path.is_file():
        return Response(status_code=404)
    return FileResponse(path, media_type="application/octet-stream")  # as the real static route answers


async def internal_folder_paths(request: Request) -> Response:
    fake = _fake(request)
    return json_response(fake.capture("misc/internal_folder_paths.json", {}))


ROUTES: list[BaseRoute] = [
    Route("/view", view, methods=["GET"]),
    Route("/upload/image", upload_image, methods=["POST"]),
    Route("/userdata", list_userdata, methods=["GET"]),
    Route("/v2/userdata", list_userdata_v2, methods=["GET"]),
    Route("/userdata/{rest:path}", userdata_file, methods=["GET", "POST", "DELETE"]),
    Route("/settings", get_settings, methods=["GET"]),
    Route("/settings", post_settings, methods=["POST"]),
    Route("/settings/{setting_id}", get_setting, methods=["GET"]),
    Route("/settings/{setting_id}", post_settings, methods=["POST"]),
]

#: Static files and /internal are not mirrored under /api on the real server.
UNMIRRORED: list[BaseRoute] = [
    Route("/templates/index.json", templates_index, methods=["GET"]),
    Route("/templates/{name}.json", template_file, methods=["GET"]),
    Route("/templates/{name}.webp", template_thumbnail, methods=["GET"]),
    Route("/internal/folder_paths", internal_folder_paths, methods=["GET"]),
]
