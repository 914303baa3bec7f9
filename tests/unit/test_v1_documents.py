"""The /api/v1 wire format, no network: WebSocket messages and execution documents -> core events, error
envelopes -> typed errors, Retry-After, image URLs. Messages are written as docs/api.md shows them."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from comfydesk.backends.base import HistoryEntry
from comfydesk.backends.v1_documents import (
    V1Run,
    absolute_url,
    events_from_execution,
    events_from_message,
    history_entry_from_execution,
    message_execution_id,
    outputs_from_execution,
    workflow_summaries,
)
from comfydesk.backends.v1_errors import (
    BackendUnavailable,
    GatewayError,
    GatewayExecutionError,
    TokenRejected,
    data_of,
    error_from_response,
    is_gateway_envelope,
    retry_after_seconds,
    validation_issues,
)
from comfydesk.core.errors import AuthenticationError, ServerResponseError, ServerUnreachable, ValidationError
from comfydesk.core.events import (
    Completed,
    Failed,
    Interrupted,
    NodeStarted,
    OutputRef,
    Preview,
    Progress,
    Queued,
)

BASE = "http://127.0.0.1:9000"


def execution(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": 1,
        "workflow_id": 1,
        "status": status,
        "progress": 100 if status == "completed" else 0,
        "created_at": "2024-03-20T10:00:00Z",
        "updated_at": "2024-03-20T10:00:00Z",
        **extra,
    }


COMPLETED = execution(
    "completed", outputs={"images": [{"url": "/api/v1/images/generated/1.png", "width": 1024, "height": 768}]}
)


def names(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


def submitted() -> V1Run:
    return V1Run("1", "1", queued=True)  # submit() has emitted Queued already


# ------------------------------------------------------------------------------------------------ events


def test_a_whole_run_maps_message_by_message() -> None:
    run = submitted()
    preview = base64.b64encode(b"\xff\xd8jpeg").decode()
    stream: list[dict[str, Any]] = [
        {"type": "status", "execution": execution("queued")},
        {"type": "status", "execution": execution("running")},
        {
            "type": "progress",
            "execution": execution("running", progress=25),
            "node": "3",
            "value": 5,
            "max": 20,
        },
        {"type": "preview", "execution": {"id": 1}, "mime": "image/jpeg", "image": preview},
        {"type": "status", "execution": COMPLETED},
        {"type": "completed", "execution": COMPLETED},
    ]
    events = [e for msg in stream for e in events_from_message(run, msg, BASE)]
    assert names(events) == ["Started", "NodeStarted", "Progress", "Preview", "Completed"]
    assert events[1] == NodeStarted("1", "3")
    assert events[2] == Progress("1", "3", 5, 20)
    assert isinstance(events[3], Preview) and events[3].image == b"\xff\xd8jpeg"
    assert events[3].mime == "image/jpeg" and events[3].node_id is None
    done = events[4]
    assert isinstance(done, Completed)
    assert done.outputs == (
        OutputRef(
            node_id="",
            kind="images",
            filename="1.png",
            url=f"{BASE}/api/v1/images/generated/1.png",
            width=1024,
            height=768,
        ),
    )
    assert done.outputs[0].is_image
    assert run.terminal


def test_late_status_after_the_end_is_ignored_and_the_terminal_event_comes_once() -> None:
    run = submitted()
    first = events_from_message(run, {"type": "completed", "execution": COMPLETED}, BASE)
    assert names(first) == ["Started", "Completed"]  # a completed run did start, even if we missed it
    again = [
        *events_from_message(run, {"type": "status", "execution": COMPLETED}, BASE),
        *events_from_message(run, {"type": "completed", "execution": COMPLETED}, BASE),
        *events_from_execution(run, COMPLETED, BASE),
    ]
    assert again == []


def test_progress_without_a_running_status_still_starts_the_run_once() -> None:
    run = submitted()
    msg = {"type": "progress", "execution": {"id": 1}, "node": "text_to_image", "value": 1, "max": 4}
    assert names(events_from_message(run, msg, BASE)) == ["Started", "NodeStarted", "Progress"]
    assert names(events_from_message(run, msg, BASE)) == ["Progress"]
    assert names(events_from_message(run, {"type": "status", "execution": execution("running")}, BASE)) == []


def test_progress_without_steps_only_names_the_node() -> None:
    run = V1Run("1", queued=True, started=True)
    overall = {"type": "progress", "execution": {"id": 1}, "node": None, "value": 0, "max": 0}
    assert events_from_message(run, overall, BASE) == []
    first = {"type": "progress", "execution": {"id": 1}, "node": "a", "value": 0, "max": 0}
    assert events_from_message(run, first, BASE) == [NodeStarted("1", "a")]
    assert events_from_message(run, first, BASE) == []
    second = {"type": "progress", "execution": {"id": 1}, "node": "b", "value": 1, "max": 2}
    assert events_from_message(run, second, BASE) == [NodeStarted("1", "b"), Progress("1", "b", 1, 2)]


def test_failed_carries_what_the_server_said() -> None:
    run = submitted()
    error = {
        "code": "execution_error",
        "message": "Failed to generate image",
        "details": "Node error: Invalid prompt",
        "node_id": "text_to_image",
        "node_type": "text_to_image",
        "exception_type": "ValueError",
        "traceback": ["Traceback (most recent call last):\n", "ValueError: bad\n"],
    }
    (event,) = events_from_message(
        run, {"type": "failed", "execution": execution("failed", error=error)}, BASE
    )
    assert isinstance(event, Failed)
    assert event.error.message == "Failed to generate image: Node error: Invalid prompt"
    assert (event.error.node_id, event.error.node_type) == ("text_to_image", "text_to_image")
    assert event.error.exception_type == "ValueError"
    assert event.error.traceback == ("Traceback (most recent call last):\n", "ValueError: bad\n")


def test_failed_without_an_error_object_still_ends_the_run() -> None:
    run = submitted()
    (event,) = events_from_execution(run, execution("failed"), BASE)
    assert isinstance(event, Failed) and "without saying why" in event.error.message


def test_cancelled_is_an_interruption_by_cancel() -> None:
    run = submitted()
    error = {"code": "cancelled", "message": "Cancelled"}
    events = events_from_message(
        run, {"type": "cancelled", "execution": execution("cancelled", error=error)}, BASE
    )
    assert events == [Interrupted("1", None, reason="cancelled")]


def test_a_reconciled_run_we_never_saw_queued_starts_with_queued() -> None:
    run = V1Run("7")
    assert names(events_from_execution(run, execution("running", id=7), BASE)) == ["Queued", "Started"]
    assert events_from_execution(V1Run("8"), execution("queued", id=8), BASE) == [Queued("8", None)]


def test_a_preview_that_does_not_decode_is_dropped_with_a_note() -> None:
    notes: list[str] = []
    run = V1Run("1", queued=True, started=True)
    msg = {"type": "preview", "execution": {"id": 1}, "image": "not base64!!"}
    assert events_from_message(run, msg, BASE, log_bad=notes.append) == []
    assert notes and "preview" in notes[0]


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        ({"type": "status", "execution": {"id": 12}}, "12"),
        ({"type": "status", "execution": {"status": "queued"}}, None),
        ({"type": "hello"}, None),
        ([1, 2], None),
    ],
)
def test_message_execution_id(msg: Any, expected: str | None) -> None:
    assert message_execution_id(msg) == expected


def test_unknown_message_types_are_ignored() -> None:
    run = submitted()
    assert events_from_message(run, {"type": "something_new", "execution": {"id": 1}}, BASE) == []
    assert not run.started


def test_the_execute_answer_itself_may_say_running() -> None:
    run = submitted()
    assert names(events_from_execution(run, execution("running"), BASE)) == ["Started"]
    assert events_from_execution(run, execution("queued"), BASE) == []


# ------------------------------------------------------------------------------------------------ documents


@pytest.mark.parametrize(
    ("base", "url", "expected"),
    [
        ("http://h:9000", "/api/v1/images/generated/1.png", "http://h:9000/api/v1/images/generated/1.png"),
        ("https://h/gw", "/api/v1/images/generated/1.png", "https://h/gw/api/v1/images/generated/1.png"),
        ("https://h/gw", "/gw/api/v1/images/generated/1.png", "https://h/gw/api/v1/images/generated/1.png"),
        ("http://h:9000", "http://cdn/x/2.png", "http://cdn/x/2.png"),
        ("http://h:9000", "api/v1/images/generated/3.png", "http://h:9000/api/v1/images/generated/3.png"),
    ],
)
def test_absolute_url(base: str, url: str, expected: str) -> None:
    assert absolute_url(base, url) == expected


def test_outputs_skip_entries_without_a_url() -> None:
    doc = {"outputs": {"images": [{"width": 1}, {"url": ""}, "junk", {"url": "/a/b/9.png", "width": "x"}]}}
    (ref,) = outputs_from_execution(doc, BASE)
    assert ref.filename == "9.png" and ref.width is None and ref.url == f"{BASE}/a/b/9.png"


def test_workflow_summaries_follow_the_spec_example() -> None:
    data = {
        "workflows": [
            {
                "id": 1,
                "name": "Blog Post Image",
                "description": "Generate blog post header image",
                "nodes": [],
            },
            {"id": 2, "name": "", "description": None, "nodes": []},
            {"name": "no id"},
        ]
    }
    summaries = workflow_summaries(data)
    assert [(s.id, s.name, s.source, s.description) for s in summaries] == [
        ("1", "Blog Post Image", "v1", "Generate blog post header image"),
        ("2", "workflow 2", "v1", ""),
    ]


def test_history_entries() -> None:
    entry = history_entry_from_execution(COMPLETED, BASE)
    assert isinstance(entry, HistoryEntry)
    assert (entry.execution_id, entry.status, entry.completed) == ("1", "success", True)
    assert entry.outputs[0].width == 1024
    failed = history_entry_from_execution(execution("failed", error={"code": "x", "message": "m"}), BASE)
    assert (failed.status, failed.completed, failed.messages[0][0]) == ("error", True, "error")
    assert history_entry_from_execution(execution("running"), BASE).completed is False
    assert history_entry_from_execution(execution("cancelled"), BASE).status == "interrupted"


# ------------------------------------------------------------------------------------------------ errors


def envelope(status_message: str, *errors: dict[str, str]) -> str:
    return json.dumps({"status": "error", "message": status_message, "errors": list(errors)})


def test_401_says_the_token_was_rejected_and_never_shows_it() -> None:
    body = envelope("Unauthorized", {"code": "unauthorized", "message": "Invalid token"})
    exc = error_from_response(401, body, url=BASE, what="reading the node list", token_given=True)
    assert isinstance(exc, TokenRejected) and isinstance(exc, AuthenticationError)
    assert "token rejected" in str(exc) and BASE in str(exc)
    none = error_from_response(401, body, url=BASE, what="x", token_given=False)
    assert "none was given" in none.user_text()


def test_422_validation_error_is_one_issue_per_field_placed_on_it() -> None:
    body = envelope(
        "Validation failed",
        {"code": "validation_error", "message": "Missing value", "details": "input 'prompt'"},
        {"code": "validation_error", "message": "Must be text", "details": "input 'negative_prompt'"},
        {"code": "validation_error", "message": "Out of range", "details": "node 'ks' input 'steps'"},
        {"code": "validation_error", "message": "Unknown node type 'Nope'", "details": "somewhere else"},
    )
    exc = error_from_response(422, body, url=BASE, what="starting workflow 1", token_given=True)
    assert isinstance(exc, ValidationError)
    issues = exc.issues
    assert [(i.node_id, i.input_name, i.field_key) for i in issues] == [
        ("", "prompt", "prompt"),
        ("", "negative_prompt", "negative_prompt"),
        ("ks", "steps", "ks.steps"),
        ("", None, None),
    ]
    assert issues[0].describe() == "input 'prompt': Missing value"
    assert issues[3].message == "Unknown node type 'Nope' (somewhere else)"  # details kept
    assert "input 'prompt'" in exc.details and "starting workflow 1" in exc.message


def test_422_execution_error_keeps_the_spec_message_and_details() -> None:
    body = envelope(
        "Workflow execution failed",
        {
            "code": "execution_error",
            "message": "Failed to generate image",
            "details": "Node error: Invalid prompt",
        },
    )
    exc = error_from_response(422, body, url=BASE, what="starting workflow 1", token_given=True)
    assert isinstance(exc, GatewayExecutionError)
    assert exc.code == "execution_error" and exc.status == 422
    assert "Failed to generate image" in exc.message and "Node error: Invalid prompt" in exc.message
    assert exc.errors[0]["details"] == "Node error: Invalid prompt"
    assert "Node error: Invalid prompt" in exc.details


def test_503_is_unreachable_naming_backend_unavailable() -> None:
    body = envelope("Service unavailable", {"code": "backend_unavailable", "message": "No healthy backend"})
    exc = error_from_response(503, body, url=BASE, what="starting workflow 1", token_given=True)
    assert isinstance(exc, BackendUnavailable) and isinstance(exc, ServerUnreachable)
    assert "backend_unavailable" in exc.message and "No healthy backend" in exc.message


def test_404_and_others_keep_the_server_sentence() -> None:
    body = envelope("Workflow not found", {"code": "not_found", "message": "Workflow with id 1 not found"})
    exc = error_from_response(404, body, url=BASE, what="reading workflow 1", token_given=True)
    assert isinstance(exc, GatewayError) and exc.status == 404 and exc.code == "not_found"
    assert exc.message == "reading workflow 1 failed: Workflow with id 1 not found"
    plain = error_from_response(502, "<html>Bad gateway</html>", url=BASE, what="x", token_given=True)
    assert isinstance(plain, ServerResponseError) and not isinstance(plain, GatewayError)
    assert plain.message == "x failed: the gateway answered HTTP 502 (Bad gateway (an HTML page))"


def test_envelopes() -> None:
    assert is_gateway_envelope({"status": "success", "data": {}})
    assert is_gateway_envelope({"status": "error", "message": "x", "errors": []})
    assert not is_gateway_envelope({"status": "success"})
    assert not is_gateway_envelope({"detail": "Not Found"})
    assert data_of(b'{"status": "success", "data": {"a": 1}}', "x") == {"a": 1}
    with pytest.raises(ServerResponseError, match="did not answer JSON"):
        data_of(b"404: Not Found", "reading the node list")
    with pytest.raises(ServerResponseError, match="not a gateway success envelope"):
        data_of(b'{"status": "error", "message": "x"}', "x")


def test_validation_issues_without_details() -> None:
    (issue,) = validation_issues([{"code": "validation_error", "message": "Bad"}])
    assert (issue.node_id, issue.input_name, issue.message) == ("", None, "Bad")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"X-RateLimit-Reset": "1445412485"}, 5.0),
        ({"Retry-After": "soon"}, 1.0),
        ({}, 1.0),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "99999"}, 300.0),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float) -> None:
    now = 1445412480.0  # 2015-10-21 07:28:00 GMT
    assert retry_after_seconds(headers, now=now) == pytest.approx(expected)
