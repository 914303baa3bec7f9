"""Schemathesis against a live gateway: every operation of `/api/v1/openapi.json` is fuzzed and every answer
must match the document.

The gateway fronts the demo engine and is seeded with the spec's "Blog Post Image" workflow (a fresh one,
and a copy to delete, for each test), a completed run of it (with its image) and a cancelled one, so cases
reach real rows as well as unknown ids. Each operation gets schema-valid and schema-invalid cases, with
random path ids and with the seeded ones, plus the document's own examples, sent with the admin token and
again with a user token (which meets the 403s and the 404s of rows it does not own). Every answer must be
free of server errors and conform to the document: a declared status code, content type and headers
(`X-RateLimit-*` on every answer, `Retry-After` on 429), a body matching the declared schema;
schema-invalid requests must be refused, and the same request without a token (or with a wrong one) must
get 401.

Not checked: schemathesis's `positive_data_acceptance`. A schema-valid workflow still names node types,
links and values that must exist in the ComfyUI machines' catalog, which the document cannot list, so 422
is the right answer to nearly every generated one; `test_documented_examples_are_accepted` checks the
positive side with the document's examples instead.

Schemathesis's pytest integration (`schemathesis.pytest.from_fixture` + `@schema.parametrize()`) fails
on pytest 9 (it sets `Function._nodeid`, which pytest 9 no longer has), so the schema comes from a fixture
(`schemathesis.openapi.from_url`) and each operation (per token) is a parametrized test that draws its
cases from `APIOperation.as_strategy` under Hypothesis, then `case.call_and_validate`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import BaseSchema, Case, GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from comfydesk.gateway.testing import RunningGateway, start_gateway

API = "/api/v1/comfyui"
BLOG_POST_IMAGE: dict[str, Any] = {
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
# Every operation of the document; DELETE last, so the rows the others read are still there.
OPERATIONS = [
    ("GET", f"{API}/workflows"),
    ("POST", f"{API}/workflows"),
    ("GET", f"{API}/workflows/{{workflow_id}}"),
    ("PUT", f"{API}/workflows/{{workflow_id}}"),
    ("POST", f"{API}/workflows/{{workflow_id}}/execute"),
    ("GET", f"{API}/executions/{{execution_id}}"),
    ("GET", f"{API}/executions"),
    ("POST", f"{API}/executions/{{execution_id}}/cancel"),
    ("GET", f"{API}/nodes"),
    ("GET", f"{API}/backends"),
    ("GET", "/api/v1/images/generated/{file_name}"),
    ("DELETE", f"{API}/workflows/{{workflow_id}}"),
]
# Cases per operation for each token: the admin reaches every row; a user token meets the 403s and the 404s
# of rows it does not own (the seeded rows are the admin's). About 40 s in all on 2 cores.
ROLES = {"admin": 60, "user": 20}
CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]


@dataclass(frozen=True)
class Seeded:
    """Rows path parameters can name (all the admin's)."""

    workflow_id: int
    victim_id: int  # a second copy, for DELETE
    completed_id: int
    cancelled_id: int
    image_name: str

    def path_parameters(self, method: str, names: list[str]) -> list[dict[str, Any]]:
        """The real values for an operation's path parameters, one set per row worth reaching."""
        if not names:
            return []
        if names == ["workflow_id"]:
            return [{"workflow_id": self.victim_id if method == "DELETE" else self.workflow_id}]
        if names == ["execution_id"]:
            return [{"execution_id": self.completed_id}, {"execution_id": self.cancelled_id}]
        if names == ["file_name"]:
            return [{"file_name": self.image_name}]
        raise AssertionError(f"no seeded value for path parameters {names}")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _wait_for(client: httpx.Client, execution_id: int, statuses: tuple[str, ...]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        execution: dict[str, Any] = client.get(f"{API}/executions/{execution_id}").json()["data"]["execution"]
        if execution["status"] in statuses or time.monotonic() > deadline:
            return execution
        time.sleep(0.02)  # polling the condition, bounded by the deadline


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = start_gateway(data_dir=tmp_path_factory.mktemp("openapi-gateway"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def runs(live_gateway: RunningGateway) -> tuple[int, int, str]:
    """A completed run of Blog Post Image (and its image's file name) and a cancelled one."""
    with httpx.Client(base_url=live_gateway.url, headers=_auth(live_gateway.admin_token)) as client:
        workflow = client.post(f"{API}/workflows", json=BLOG_POST_IMAGE).json()["data"]["workflow"]
        run = client.post(f"{API}/workflows/{workflow['id']}/execute", json=INPUTS)
        assert run.status_code == 202, run.text
        completed = _wait_for(client, run.json()["data"]["execution"]["id"], ("completed",))
        assert completed["status"] == "completed", completed
        other = client.post(f"{API}/workflows/{workflow['id']}/execute", json=INPUTS).json()["data"]
        cancelled = client.post(f"{API}/executions/{other['execution']['id']}/cancel").json()["data"]
    image_url: str = completed["outputs"]["images"][0]["url"]
    return completed["id"], cancelled["execution"]["id"], image_url.rsplit("/", 1)[1]


@pytest.fixture
def seeded(live_gateway: RunningGateway, runs: tuple[int, int, str]) -> Seeded:
    """A fresh Blog Post Image workflow (and a copy to delete) for each test, and the module's runs."""
    with httpx.Client(base_url=live_gateway.url, headers=_auth(live_gateway.admin_token)) as client:
        created = [client.post(f"{API}/workflows", json=BLOG_POST_IMAGE) for _ in range(2)]
    assert [r.status_code for r in created] == [201, 201], created[0].text
    workflow_id, victim_id = (r.json()["data"]["workflow"]["id"] for r in created)
    return Seeded(workflow_id, victim_id, *runs)


def _load_schema(gateway: RunningGateway, token: str) -> BaseSchema:
    """The document as the gateway serves it (it needs a token too); its cases send `token`."""
    auth = _auth(token)
    schema = schemathesis.openapi.from_url(f"{gateway.url}/api/v1/openapi.json", headers=auth, timeout=10)
    schema.config.update(base_url=gateway.url, headers=auth)
    # A refusal by size is a refusal too: a schema-invalid body over --max-body (a `nodes` list past its
    # `maxItems` can be) gets 413 before anyone reads it.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    return schema


@pytest.fixture(scope="module")
def schemas(live_gateway: RunningGateway) -> dict[str, BaseSchema]:
    return {
        "admin": _load_schema(live_gateway, live_gateway.admin_token),
        "user": _load_schema(live_gateway, live_gateway.create_token("fuzz-user")),
    }


@pytest.fixture(scope="module")
def api_schema(schemas: dict[str, BaseSchema]) -> BaseSchema:
    return schemas["admin"]


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def test_document_lists_the_tested_operations(api_schema: BaseSchema) -> None:
    documented = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert documented == set(OPERATIONS)


def test_document_needs_a_token(live_gateway: RunningGateway) -> None:
    answer = httpx.get(f"{live_gateway.url}/api/v1/openapi.json")
    assert answer.status_code == 401
    assert answer.json()["errors"][0]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("role", "method", "path"),
    [(role, m, p) for role in ROLES for m, p in OPERATIONS],
    ids=[f"{role} {m} {p}" for role in ROLES for m, p in OPERATIONS],
)
def test_operation_conforms(
    schemas: dict[str, BaseSchema],
    seeded: Seeded,
    session: requests.Session,
    role: str,
    method: str,
    path: str,
) -> None:
    schema = schemas[role]
    operation = schema[path][method]
    real = seeded.path_parameters(method, [p.name for p in operation.path_parameters])
    strategies = [
        operation.as_strategy(mode, path_parameters=params)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for params in [None, *real]
    ]
    strategies += operation.get_strategies_from_examples()
    headers = dict(schema.config.headers or {})

    @given(case=st.one_of(strategies))
    @settings(
        max_examples=ROLES[role],
        deadline=None,
        database=None,
        # Every case is a round trip to a live server; slow generation is expected, not a problem.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def conforms(case: Case) -> None:
        case.call_and_validate(session=session, headers=headers, checks=CHECKS)

    conforms()


def test_documented_examples_are_accepted(
    api_schema: BaseSchema, seeded: Seeded, session: requests.Session
) -> None:
    """The request bodies the document shows are the spec's, and the gateway takes them."""
    components = api_schema.raw_schema["components"]["schemas"]
    assert components["WorkflowBody"]["examples"] == [BLOG_POST_IMAGE]
    assert components["ExecuteBody"]["examples"] == [INPUTS]
    headers = dict(api_schema.config.headers or {})
    for method, path, params, body, status in [
        ("POST", f"{API}/workflows", {}, BLOG_POST_IMAGE, 201),
        (
            "PUT",
            f"{API}/workflows/{{workflow_id}}",
            {"workflow_id": seeded.workflow_id},
            BLOG_POST_IMAGE,
            200,
        ),
        (
            "POST",
            f"{API}/workflows/{{workflow_id}}/execute",
            {"workflow_id": seeded.workflow_id},
            INPUTS,
            202,
        ),
    ]:
        case = api_schema[path][method].Case(path_parameters=params, body=body)
        response = case.call_and_validate(session=session, headers=headers, checks=CHECKS)
        assert response.status_code == status, response.text


def test_unpaired_surrogates_are_refused(live_gateway: RunningGateway, seeded: Seeded) -> None:
    """What the fuzzer cannot send (it makes only UTF-8-encodable text): JSON's `\\ud800` escapes, which
    decode to text UTF-8 cannot carry. Each is a 422 naming the input, and nothing is run or stored."""
    workflow = dict(BLOG_POST_IMAGE, name="Surrogates")
    literal = [dict(workflow["nodes"][0], inputs={"prompt": "a\ud800", "negative_prompt": ""})]
    nested = [dict(workflow["nodes"][0], inputs={"prompt": {"a": ["b", "\udc00"]}})]
    execute = f"{API}/workflows/{seeded.workflow_id}/execute"
    cases = [
        ("POST", f"{API}/workflows", dict(workflow, name="a\ud800"), "name"),
        ("POST", f"{API}/workflows", dict(workflow, nodes=literal), "nodes.0.inputs"),
        ("PUT", f"{API}/workflows/{seeded.workflow_id}", dict(workflow, nodes=nested), "nodes.0.inputs"),
        ("POST", execute, {"inputs": {"prompt": "a\ud800"}}, "inputs"),
        ("POST", execute, {"inputs": {"prompt\udfff": "a"}}, "inputs"),
    ]
    headers = {**_auth(live_gateway.admin_token), "Content-Type": "application/json"}
    with httpx.Client(base_url=live_gateway.url, headers=headers) as client:
        before = client.get(f"{API}/executions").json()["data"]["total"]
        for method, path, body, details in cases:
            # json.dumps writes the surrogates as \ud800 escapes: valid JSON, not valid Unicode.
            answer = client.request(method, path, content=json.dumps(body))
            assert answer.status_code == 422, (path, body, answer.text)
            assert answer.json()["errors"][0]["code"] == "validation_error"
            assert answer.json()["errors"][0]["details"] == details
        assert client.get(f"{API}/executions").json()["data"]["total"] == before
        assert (
            client.get(f"{API}/workflows/{seeded.workflow_id}").json()["data"]["workflow"]["name"]
            == (BLOG_POST_IMAGE["name"])
        )
