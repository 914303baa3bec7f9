"""The examples of docs/api.md work: every ```sh block with `curl` runs with bash (the real curl) against a
live gateway and answers what the page shows.

Each example gets a fresh "Blog Post Image" workflow with a completed run, named by the variables the
page uses (`GATEWAY`, `TOKEN` an admin token, `WORKFLOW_ID`, `EXECUTION_ID`, `IMAGE_URL`), and runs in its
own directory. The JSON block after an example is its documented answer: the live answer must have the
same `status`, the same keys under `data` (or the same error codes), and both must match the route's
schema in the gateway's OpenAPI document. An example without a JSON answer writes a file: an image must be
a PNG of the size the page says, a `.json` file the OpenAPI document. The 429 example runs against a
gateway whose limit is 5 requests a minute. The WebSocket example runs too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jsonschema_rs
import pytest
from PIL import Image

from comfydesk.gateway.testing import RunningGateway, start_gateway

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api.md"
API = "/api/v1/comfyui"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
HEADING = re.compile(r"^#+ (.+)$", re.M)
BLOG_POST_IMAGE = {
    "name": "Blog Post Image",
    "description": "Generate blog post header image",
    "nodes": [
        {
            "id": "text_to_image",
            "type": "text_to_image",
            "inputs": {"prompt": "{prompt}", "negative_prompt": "{negative_prompt}"},
        }
    ],
}
INPUTS = {"inputs": {"prompt": "A beautiful landscape", "negative_prompt": "ugly, blurry"}}


@dataclass(frozen=True)
class Example:
    title: str  # the heading above it
    script: str
    answer: dict[str, Any] | None  # the JSON block after it, before the next example

    @property
    def method(self) -> str:
        found = re.search(r"-X (\w+)", self.script)
        return found.group(1) if found else "GET"

    @property
    def path(self) -> str | None:
        """The URL path after `$GATEWAY`, variables as `$NAME`, without the query."""
        found = re.search(r'"\$GATEWAY(/[^"?]*)', self.script)
        return found.group(1) if found else None


def examples(text: str, language: str = "sh", needle: str = "curl") -> list[Example]:
    fences = [(m.start(), m.group(1), m.group(2)) for m in FENCE.finditer(text)]
    found = []
    for i, (start, lang, body) in enumerate(fences):
        if lang != language or needle not in body:
            continue
        answer = None
        for _, next_lang, next_body in fences[i + 1 :]:
            if next_lang == "sh":
                break
            if next_lang == "json":
                answer = json.loads(next_body)
                break
        headings = HEADING.findall(text[:start])
        found.append(Example(headings[-1] if headings else "?", body, answer))
    return found


DOC_TEXT = DOC.read_text(encoding="utf-8")
CURL_EXAMPLES = examples(DOC_TEXT)
WS_EXAMPLES = examples(DOC_TEXT, needle="python -m websockets")


def _wait_for_completion(client: httpx.Client, execution_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        execution: dict[str, Any] = client.get(f"{API}/executions/{execution_id}").json()["data"]["execution"]
        if execution["status"] not in ("queued", "running") or time.monotonic() > deadline:
            assert execution["status"] == "completed", execution
            return execution
        time.sleep(0.02)  # polling the condition, bounded by the deadline


def seed(gateway: RunningGateway) -> dict[str, str]:
    """A fresh Blog Post Image workflow and a completed run of it, as the page's shell variables."""
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.admin_token}"}) as c:
        workflow = c.post(f"{API}/workflows", json=BLOG_POST_IMAGE).json()["data"]["workflow"]
        run = c.post(f"{API}/workflows/{workflow['id']}/execute", json=INPUTS).json()["data"]["execution"]
        done = _wait_for_completion(c, run["id"])
    return {
        "WORKFLOW_ID": str(workflow["id"]),
        "EXECUTION_ID": str(done["id"]),
        "IMAGE_URL": done["outputs"]["images"][0]["url"],
    }


@pytest.fixture(scope="module")
def curl() -> str:
    found = shutil.which("curl")
    if found is None:
        pytest.fail("curl is not installed: scripts/setup.sh installs it (apt-get install curl)")
    return found


@pytest.fixture(scope="module")
def docs_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = start_gateway(data_dir=tmp_path_factory.mktemp("docs-gateway"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def limited_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = start_gateway(data_dir=tmp_path_factory.mktemp("docs-limited"), rate_limit="5/minute")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def openapi(docs_gateway: RunningGateway) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {docs_gateway.admin_token}"}
    document: dict[str, Any] = httpx.get(f"{docs_gateway.url}/api/v1/openapi.json", headers=headers).json()
    return document


def _env(**values: str) -> dict[str, str]:
    # `python` is this interpreter (the virtualenv's, with the websockets client).
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, **values}


def _pointer(*parts: str) -> str:
    """A JSON pointer as a URI fragment (`{` and `}` of path templates percent-encoded)."""
    return "#/" + "/".join(quote(p.replace("~", "~0").replace("/", "~1"), safe="~") for p in parts)


def _answer_schema(openapi: dict[str, Any], example: Example, answer: dict[str, Any]) -> Any:
    """A validator for `answer` from the OpenAPI document: the route's 2xx schema, or the error body."""
    if answer["status"] == "error":
        ref = _pointer("components", "schemas", "ErrorBody")
    else:
        assert example.path is not None, example.script
        concrete = re.sub(r"\$\w+", "X", example.path)
        route = next(
            template
            for template in openapi["paths"]
            if re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", template), concrete)
        )
        responses = openapi["paths"][route][example.method.lower()]["responses"]
        code = next(c for c in responses if c.startswith("2"))
        ref = _pointer("paths", route, example.method.lower(), "responses", code, "content")
        ref += "/application~1json/schema"
    return jsonschema_rs.validator_for({**openapi, "$ref": ref})


def _same_shape(live: dict[str, Any], documented: dict[str, Any]) -> None:
    assert live["status"] == documented["status"], live
    if documented["status"] == "error":
        assert [e["code"] for e in live["errors"]] == [e["code"] for e in documented["errors"]], live
    else:
        assert set(live["data"]) == set(documented["data"]), live


def test_the_page_has_an_example_for_every_endpoint(openapi: dict[str, Any]) -> None:
    shown = {(e.method, re.sub(r"\$\w+", "X", e.path or "")) for e in CURL_EXAMPLES}
    for template, operations in openapi["paths"].items():
        for method in operations:
            pattern = re.sub(r"\{\w+\}", "[^/]+", template)
            assert any(m == method.upper() and re.fullmatch(pattern, p) for m, p in shown) or (
                template.startswith("/api/v1/images/")
                and any("$IMAGE_URL" in e.script for e in CURL_EXAMPLES)
            ), f"docs/api.md has no curl example for {method.upper()} {template}"
    assert len(WS_EXAMPLES) == 1


@pytest.mark.parametrize("example", CURL_EXAMPLES, ids=[e.title for e in CURL_EXAMPLES])
def test_curl_example(
    example: Example,
    curl: str,
    request: pytest.FixtureRequest,
    openapi: dict[str, Any],
    tmp_path: Path,
) -> None:
    codes = [e["code"] for e in (example.answer or {}).get("errors", [])]
    rate_limited = codes == ["rate_limited"]
    if rate_limited:
        gateway: RunningGateway = request.getfixturevalue("limited_gateway")
        values = {"TOKEN": gateway.create_token(f"docs-{time.monotonic_ns()}")}  # a fresh quota
    else:
        gateway = request.getfixturevalue("docs_gateway")
        values = {"TOKEN": gateway.admin_token, **seed(gateway)}
    done = subprocess.run(
        ["bash", "-c", example.script],
        cwd=tmp_path,
        env=_env(GATEWAY=gateway.url, **values),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    if example.answer is not None:
        live = json.loads(done.stdout)
        _same_shape(live, example.answer)
        for answer in (live, example.answer):
            validator = _answer_schema(openapi, example, answer)
            assert validator.is_valid(answer), list(validator.iter_errors(answer))[:3]
        return
    assert done.stdout == b"", "an example without a documented answer writes a file"
    written = sorted(tmp_path.iterdir())
    assert len(written) == 1, written
    if written[0].suffix == ".png":
        with Image.open(written[0]) as image:
            assert (image.format, image.size) == ("PNG", (1024, 768))
    else:
        assert json.loads(written[0].read_bytes())["openapi"].startswith("3.")


@pytest.mark.parametrize("example", WS_EXAMPLES, ids=[e.title for e in WS_EXAMPLES])
def test_websocket_example(example: Example, docs_gateway: RunningGateway, tmp_path: Path) -> None:
    """The `websockets` client shows a finished run as `status`, then `completed`, then the close."""
    env = _env(GATEWAY=docs_gateway.url, TOKEN=docs_gateway.admin_token, **seed(docs_gateway))
    with subprocess.Popen(
        ["bash", "-c", example.script],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,  # kept open: the client stays until the server closes
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as client:
        assert client.stdout is not None and client.stderr is not None
        returncode = client.wait(timeout=30)  # the answer is small: no pipe fills up meanwhile
        out, err = client.stdout.read(), client.stderr.read()
    assert returncode == 0, err.decode(errors="replace")
    received = [json.loads(line.split("< ", 1)[1]) for line in out.decode().splitlines() if "< {" in line]
    assert [m["type"] for m in received] == ["status", "completed"], out
    assert received[1]["execution"]["outputs"]["images"][0]["width"] == 1024
    assert "Connection closed: 1000 (OK)" in out.decode()
