"""The ComfyUI message -> event mapping, replayed from real captured transcripts, and POST /prompt errors."""

from __future__ import annotations

import itertools
import json
import socket
import ssl
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from comfydesk.backends.base import BackendEvent, QueueChanged
from comfydesk.backends.comfyui_documents import prompt_error, queue_items_from_json
from comfydesk.backends.comfyui_protocol import (
    LOST_RUN_MESSAGE,
    ProtocolMapper,
    RunState,
    events_from_history,
    history_entry_from_json,
    outputs_from_ui,
    parse_binary_frame,
    safe_output_name,
)
from comfydesk.backends.reconnect import ReconnectPolicy
from comfydesk.core.errors import ServerResponseError, UnsafeInputError, ValidationError
from comfydesk.core.events import (
    Cached,
    Completed,
    Failed,
    Interrupted,
    NodeOutput,
    NodeStarted,
    OutputRef,
    Preview,
    Progress,
    Started,
)
from comfydesk.core.graph import ApiGraph
from tests.conftest import FIXTURES, load_json

TRANSCRIPTS = FIXTURES / "transcripts"


def frames(run: str) -> Iterator[str | bytes]:
    """The frames of a captured transcript, rebuilt byte for byte as the server sent them."""
    for line in (TRANSCRIPTS / f"{run}.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["kind"] == "text":
            yield json.dumps(rec["data"])  # the server serialises with json.dumps defaults too
        elif rec["kind"] == "binary":
            image = (TRANSCRIPTS / rec["file"]).read_bytes()
            if rec["event_type"] == 1:
                yield struct.pack(">II", 1, rec["image_format"]) + image
            else:
                meta = json.dumps(rec["metadata"]).encode()
                assert len(meta) == rec["metadata_length"]
                yield struct.pack(">II", 4, len(meta)) + meta + image


def prompt_id_of(run: str) -> str:
    return str(load_json(f"prompts/{run}.response.json")["body"]["prompt_id"])


def replay(run: str, *tracked: str) -> list[BackendEvent]:
    mapper = ProtocolMapper()
    for pid in tracked or (prompt_id_of(run),):
        mapper.track(pid)
    events: list[BackendEvent] = []
    for frame in frames(run):
        events += mapper.feed_text(frame) if isinstance(frame, str) else mapper.feed_binary(frame)
    return events


def short(event: BackendEvent) -> str:
    """One compact line per event, so a whole run reads as a list."""
    match event:
        case QueueChanged(remaining=n):
            return f"queue:{n}"
        case Started():
            return "start"
        case Cached(node_ids=ids):
            return "cached:" + ",".join(ids)
        case NodeStarted(node_id=n):
            return f"node:{n}"
        case Progress(node_id=n, value=v, max=m):
            return f"progress:{n}:{v}/{m}"
        case Preview(node_id=n, mime=mime, image=image):
            assert image[:2] == b"\xff\xd8"  # a JPEG, header stripped
            return f"preview:{n}:{mime}"
        case NodeOutput(node_id=n, outputs=outs, cached=cached):
            files = ",".join(f"{o.kind}={o.filename or repr(o.data)}[{o.type}]" for o in outs)
            return f"output:{n}:{files}" + (":cached" if cached else "")
        case Completed(outputs=outs):
            return f"completed:{len(outs)}"
        case Failed(error=err):
            return f"failed:{err.node_id}:{err.node_type}:{err.exception_type}"
        case Interrupted(node_id=n):
            return f"interrupted:{n}"
    raise AssertionError(f"unexpected event {event!r}")


def steps(node: str, n: int, *, preview_first: bool = False, previews: int | None = None) -> list[str]:
    out: list[str] = []
    for i in range(1, n + 1):
        pair = [f"progress:{node}:{i}/{n}"]
        if previews is None or i <= previews:
            preview = f"preview:{node}:image/jpeg"
            pair = [preview, *pair] if preview_first else [*pair, preview]
        out += pair
    return out


HEAD = ["queue:0", "queue:1", "start", "cached:"]

EXPECTED: dict[str, list[str]] = {
    "empty_blur_save": [
        *HEAD, "node:1", "node:2", "node:3",
        "output:3:images=fixture_blur_00001_.png[output]", "completed:1", "queue:0",
    ],
    "empty_blur_save_cached": [
        "queue:0", "queue:1", "start", "cached:1,2,3",
        "output:3:images=fixture_blur_00001_.png[output]:cached", "completed:1", "queue:0",
    ],
    "empty_preview": [
        *HEAD, "node:1", "node:2",
        "output:2:images=ComfyUI_temp_pjcri_00001_.png[temp]", "completed:1", "queue:0",
    ],
    "batch4_save": [
        *HEAD, "node:1", "node:2",
        "output:2:" + ",".join(f"images=fixture_batch_0000{i}_.png[output]" for i in range(1, 5)),
        "completed:4", "queue:0",
    ],
    "two_outputs": [
        *HEAD, "node:1", "node:2", "output:2:images=fixture_two_a_00001_.png[output]",
        "node:3", "node:4", "output:4:images=ComfyUI_temp_bfzup_00001_.png[temp]", "completed:2", "queue:0",
    ],
    "load_invert_scale_save": [
        *HEAD, "node:10", "node:11", "node:12", "node:13",
        "output:13:images=inverted_00001_.png[output]", "completed:1", "queue:0",
    ],
    "text_output": [
        *HEAD, "node:1", "node:2",
        "output:2:text='line one\\nline two'[output],text='line one\\nline two'[output],"
        "text='image batch shape: [2, 16, 16, 3]'[output]",
        "completed:3", "queue:0",
    ],
    "fail": [*HEAD, "node:1", "node:2", "node:3", "failed:3:TestFail:RuntimeError", "queue:0"],
    "slow_steps": [
        *HEAD, "node:1", "node:2", *steps("2", 8), "node:3",
        "output:3:images=fixture_slow_00001_.png[output]", "completed:1", "queue:0",
    ],
    "slow_steps_preview_metadata": [
        *HEAD, "node:1", "node:2", *steps("2", 6, preview_first=True), "node:3",
        "output:3:images=fixture_slow_meta_00001_.png[output]", "completed:1", "queue:0",
    ],
    "txt2img_tiny_sd15": [
        *HEAD, "node:4", "node:5", "node:7", "node:6", "node:3", *steps("3", 3), "node:8", "node:9",
        "output:9:images=fixture_txt2img_00001_.png[output]", "completed:1", "queue:0",
    ],
    "txt2img_tiny_sd15_preview_metadata": [
        "queue:0", "queue:1", "start", "cached:4,6,7,5", "node:3", *steps("3", 3, preview_first=True),
        "node:8", "node:9", "output:9:images=fixture_txt2img_00002_.png[output]", "completed:1", "queue:0",
    ],
}  # fmt: skip


@pytest.mark.parametrize("run", sorted(EXPECTED))
def test_transcript_replays_to_the_exact_event_sequence(run: str) -> None:
    events = replay(run)
    assert [short(e) for e in events] == EXPECTED[run]
    pid = prompt_id_of(run)
    assert all(e.execution_id == pid for e in events if not isinstance(e, QueueChanged))


def test_every_transcript_is_covered() -> None:
    runs = {p.stem for p in TRANSCRIPTS.glob("*.jsonl")}
    assert runs == set(EXPECTED) | {"queue_interrupt_delete", "queue_clear"}


def test_slow_steps_details() -> None:
    events = replay("slow_steps")
    previews = [e for e in events if isinstance(e, Preview)]
    assert [p.image for p in previews] == [
        (TRANSCRIPTS / f"slow_steps_bin_{i}.jpg").read_bytes() for i in range(1, 9)
    ]
    done = events[-2]
    assert isinstance(done, Completed)
    assert done.outputs == (OutputRef("3", "images", "fixture_slow_00001_.png", "", "output"),)
    started = [e for e in events if isinstance(e, NodeStarted)]
    assert started[0].display_node_id == "1"


def test_failure_carries_the_servers_story() -> None:
    failed = [e for e in replay("fail") if isinstance(e, Failed)]
    assert len(failed) == 1
    err = failed[0].error
    assert (err.node_id, err.node_type, err.exception_type) == ("3", "TestFail", "RuntimeError")
    assert err.message == "deliberate failure from TestFail"
    assert err.executed == ("1", "2")
    assert err.traceback and "execution.py" in err.traceback[0]


def test_queue_interrupt_delete_gives_each_tracked_prompt_its_own_story() -> None:
    a, b, c = (prompt_id_of(r) for r in ("queue_a_slow", "queue_b", "queue_c"))
    events = replay("queue_interrupt_delete", a, b, c)
    by_id: dict[str, list[str]] = {}
    for e in events:
        if not isinstance(e, QueueChanged):
            by_id.setdefault(e.execution_id, []).append(short(e))
    assert by_id[a] == [
        "start", "cached:", "node:1", "node:2", *steps("2", 40, previews=5)[:10], "interrupted:2"
    ]  # fmt: skip
    assert by_id[b] == [
        "start", "cached:", "node:1", "node:2", *steps("2", 4), "node:3",
        "output:3:images=fixture_q_b_00001_.png[output]", "completed:1",
    ]  # fmt: skip
    assert c not in by_id  # deleted while pending: the socket says nothing about it
    assert [short(e) for e in events if isinstance(e, QueueChanged)] == [
        "queue:0",
        "queue:1",
        "queue:2",
        "queue:3",
        "queue:2",
        "queue:1",
        "queue:0",
    ]


def test_only_tracked_prompts_produce_execution_events() -> None:
    events = replay("slow_steps", "someone-elses-prompt")
    assert events and all(isinstance(e, QueueChanged) for e in events)


def test_queue_clear_interrupt() -> None:
    mapper = ProtocolMapper(track_all=True)
    events: list[BackendEvent] = []
    for frame in frames("queue_clear"):
        events += mapper.feed_text(frame) if isinstance(frame, str) else mapper.feed_binary(frame)
    assert [short(e) for e in events][-3:] == ["queue:1", "interrupted:2", "queue:0"]


def test_progress_state_is_skipped_without_parsing() -> None:
    mapper = ProtocolMapper(track_all=True)
    # Not even valid JSON after the prefix: proves the fast path never parses it.
    assert mapper.feed_text('{"type": "progress_state", "data": {broken') == []
    # Another serialisation still works through the slow path.
    assert mapper.feed_text('{"type":"progress_state","data":{"prompt_id":"p","nodes":{}}}') == []


def test_legacy_executing_null_ends_a_run_only_when_the_server_never_sends_terminals() -> None:
    legacy = ProtocolMapper(track_all=True)
    legacy.feed({"type": "execution_start", "data": {"prompt_id": "p"}})
    legacy.feed({"type": "executed", "data": {"node": "9", "prompt_id": "p", "output": {"images": []}}})
    ends = legacy.feed({"type": "executing", "data": {"node": None, "prompt_id": "p"}})
    assert [type(e) for e in ends] == [Completed]

    modern = ProtocolMapper(track_all=True)
    for name in ("execution_start", "execution_success"):
        modern.feed({"type": name, "data": {"prompt_id": "p"}})
    modern.feed({"type": "execution_start", "data": {"prompt_id": "q"}})
    # q's terminal went missing (socket gap); executing-null must not invent a success for it.
    assert modern.feed({"type": "executing", "data": {"node": None, "prompt_id": "q"}}) == []


def test_binary_frame_parsing_edge_cases() -> None:
    assert parse_binary_frame(b"\x00\x00") is None
    assert parse_binary_frame(struct.pack(">II", 3, 0) + b"text") is None
    png = parse_binary_frame(struct.pack(">II", 1, 2) + b"\x89PNG")
    assert png is not None and png.mime == "image/png" and png.node_id is None
    meta = json.dumps({"node_id": "7", "prompt_id": "p", "image_type": "image/png"}).encode()
    typed = parse_binary_frame(struct.pack(">II", 4, len(meta)) + meta + b"IMG")
    assert typed is not None and (typed.node_id, typed.prompt_id, typed.image) == ("7", "p", b"IMG")
    assert parse_binary_frame(struct.pack(">II", 4, 999) + b"{}") is None


def test_preview_without_an_executing_node_still_names_its_prompt_from_metadata() -> None:
    mapper = ProtocolMapper()
    mapper.track("p")
    meta = json.dumps({"node_id": "2", "prompt_id": "p", "image_type": "image/jpeg"}).encode()
    # The run's execution_start was missed (say, a socket gap): Started is supplied once, first.
    started, event = mapper.feed_binary(struct.pack(">II", 4, len(meta)) + meta + b"\xff\xd8")
    assert isinstance(started, Started)
    assert isinstance(event, Preview) and (event.execution_id, event.node_id) == ("p", "2")
    # A type-1 frame with nobody executing is dropped rather than misattributed.
    assert mapper.feed_binary(struct.pack(">II", 1, 1) + b"\xff\xd8") == []


# -- history -------------------------------------------------------------------------------------------


def history_of(run: str) -> tuple[str, dict[str, Any]]:
    ((pid, entry),) = load_json(f"history/{run}.json").items()
    return pid, entry


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ("slow_steps", ["start", "output:3:images=fixture_slow_00001_.png[output]", "completed:1"]),
        (
            "empty_blur_save_cached",
            ["start", "output:3:images=fixture_blur_00001_.png[output]:cached", "completed:1"],
        ),
        ("fail", ["start", "failed:3:TestFail:RuntimeError"]),
        ("queue_a_interrupted", ["start", "interrupted:2"]),
        ("two_outputs", [
            "start", "output:2:images=fixture_two_a_00001_.png[output]",
            "output:4:images=ComfyUI_temp_bfzup_00001_.png[temp]", "completed:2",
        ]),
    ],
)  # fmt: skip
def test_history_tops_up_a_run_exactly_once(run: str, expected: list[str]) -> None:
    pid, entry = history_of(run)
    state = RunState(pid)
    assert [short(e) for e in events_from_history(state, entry)] == expected
    assert events_from_history(state, entry) == []
    assert state.terminal


def test_history_skips_what_the_socket_already_delivered() -> None:
    pid, entry = history_of("two_outputs")
    mapper = ProtocolMapper()
    state = mapper.track(pid)
    mapper.feed({"type": "execution_start", "data": {"prompt_id": pid}})
    mapper.feed(
        {
            "type": "executed",
            "data": {"node": "2", "prompt_id": pid, "output": entry["outputs"]["2"]},
        }
    )
    events = events_from_history(state, entry)
    assert [short(e) for e in events] == [
        "output:4:images=ComfyUI_temp_bfzup_00001_.png[temp]",
        "completed:2",
    ]
    done = events[-1]
    assert isinstance(done, Completed) and [o.node_id for o in done.outputs] == ["2", "4"]
    # The socket's own terminal arriving later is not delivered a second time.
    assert mapper.feed({"type": "execution_success", "data": {"prompt_id": pid}}) == []


def test_history_entries() -> None:
    all_entries = load_json("history/history_all.json")
    entries = [history_entry_from_json(pid, e) for pid, e in all_entries.items()]
    assert {e.status for e in entries} >= {"success", "error", "interrupted"}
    pid, entry = history_of("text_output")
    parsed = history_entry_from_json(pid, entry)
    assert parsed.completed and parsed.status == "success"
    assert [o.data for o in parsed.outputs][-1] == "image batch shape: [2, 16, 16, 3]"
    assert parsed.messages[0][0] == "execution_start"
    assert events_from_history(RunState(pid), {}) == []  # unknown id: nothing to say yet
    assert LOST_RUN_MESSAGE == "the server restarted and lost this run"


def test_queue_items_from_busy_queue() -> None:
    doc = load_json("queue_busy.json")
    items = queue_items_from_json(doc, "bdba9e42-983f-4246-8aab-31a12f482876")
    assert [(q.running, q.position, q.mine) for q in items] == [
        (True, 0, True),
        (False, 1, True),
        (False, 2, True),
    ]
    assert items[0].execution_id == "70061936-8c8a-4470-8282-7a42cf973db8"
    assert queue_items_from_json(load_json("queue_empty.json"), "x") == []


def test_outputs_from_ui_ignores_descriptive_keys() -> None:
    refs = outputs_from_ui(
        "5", {"images": [{"filename": "a.webp", "subfolder": "", "type": "output"}], "animated": [True]}
    )
    assert [r.filename for r in refs] == ["a.webp"]
    assert outputs_from_ui("5", None) == ()


# -- safe output names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../evil.png", "a/b.png", "a\\b.png", "..", "", "C:evil.png", "x\x00.png", "..hidden..png"]
)
def test_safe_output_name_refuses_paths(name: str) -> None:
    with pytest.raises(UnsafeInputError):
        safe_output_name(OutputRef("1", "images", filename=name))


def test_safe_output_name_accepts_plain_names_and_subfolders() -> None:
    assert (
        safe_output_name(OutputRef("1", "images", "inverted_00001_.png", "fixture")) == "inverted_00001_.png"
    )
    with pytest.raises(UnsafeInputError):
        safe_output_name(OutputRef("1", "images", "ok.png", "../../etc"))
    with pytest.raises(UnsafeInputError):
        safe_output_name(OutputRef("1", "images", "ok.png", "/etc"))


# -- POST /prompt errors -------------------------------------------------------------------------------

PROMPT_ERRORS = sorted(
    p.stem
    for p in (FIXTURES / "errors").glob("*.json")
    if json.loads(p.read_text())["request"].get("path") == "/prompt"
)

PER_NODE = {
    # run: (node_id, node_title, input_name, kind, message fragment)
    "combo_value_not_in_list": ("12", "ImageScale", "upscale_method", "value_not_in_list", "banana"),
    "int_out_of_range": ("2", "Image Blur", "blur_radius", "value_bigger_than_max", "Value 999 bigger"),
    "int_wrong_type": ("1", "EmptyImage", "width", "invalid_input_type", "invalid literal for int()"),
    "link_bad_output_index": ("3", "Save Image", None, "exception_during_validation", "tuple index"),
    "link_to_missing_node": ("3", "Save Image", None, "exception_during_validation", "'99'"),
    "loadimage_missing_file": ("10", "LoadImage", "image", "custom_validation_failed", "Invalid image file"),
    "missing_required_input": ("2", "Image Blur", "blur_radius", "required_input_missing", "is missing"),
}  # fmt: skip
GRAPH_LEVEL = {
    "empty_prompt": ("prompt_no_outputs", "Prompt has no outputs"),
    "no_output_node": ("prompt_no_outputs", "Prompt has no outputs"),
    "no_prompt_key": ("no_prompt", "No prompt provided"),
    "missing_class_type": ("invalid_prompt", "missing the class_type property.: Node ID '#2'"),
    "unknown_class_type": ("invalid_prompt", "NoSuchNodeClass does not exist.: Node ID '#2'"),
}
SERVER_FAILURES = {"malformed_json", "prompt_not_a_dict"}


def test_every_prompt_error_capture_is_covered() -> None:
    assert set(PROMPT_ERRORS) == set(PER_NODE) | set(GRAPH_LEVEL) | SERVER_FAILURES


def _error_for(name: str) -> Exception:
    doc = load_json(f"errors/{name}.json")
    body = doc["body"] if isinstance(doc["body"], str) else json.dumps(doc["body"])
    prompt = doc["request"].get("json", {}).get("prompt")
    graph = (
        ApiGraph.from_prompt(prompt)
        if isinstance(prompt, dict) and prompt and name != "missing_class_type"
        else None
    )
    return prompt_error(doc["status"], body, graph)


@pytest.mark.parametrize("name", sorted(PER_NODE))
def test_node_validation_errors_land_on_their_input(name: str) -> None:
    err = _error_for(name)
    assert isinstance(err, ValidationError)
    (issue,) = err.issues
    node_id, title, input_name, kind, fragment = PER_NODE[name]
    assert (issue.node_id, issue.node_title, issue.input_name, issue.kind) == (
        node_id,
        title,
        input_name,
        kind,
    )
    assert fragment in issue.message


def test_validation_issue_message_joins_message_and_details() -> None:
    err = _error_for("int_out_of_range")
    assert isinstance(err, ValidationError)
    assert err.issues[0].message == "Value 999 bigger than max of 31: blur_radius"
    assert err.issues[0].received == 999
    assert "node 2 (Image Blur), input 'blur_radius'" in str(err)


@pytest.mark.parametrize("name", sorted(GRAPH_LEVEL))
def test_graph_level_errors(name: str) -> None:
    err = _error_for(name)
    assert isinstance(err, ValidationError)
    (issue,) = err.issues
    kind, fragment = GRAPH_LEVEL[name]
    assert issue.node_id == "" and issue.input_name is None and issue.kind == kind
    assert fragment in issue.message


@pytest.mark.parametrize("name", sorted(SERVER_FAILURES))
def test_500_text_answers_are_server_errors(name: str) -> None:
    err = _error_for(name)
    assert isinstance(err, ServerResponseError)
    assert err.status == 500
    assert "HTTP 500" in str(err) and "Server got itself in trouble" in str(err)


def test_reconnect_policy_backoff_is_capped_and_jittered() -> None:
    import random

    policy = ReconnectPolicy(initial=0.5, factor=2, max_delay=30, jitter=0.2)
    assert [ReconnectPolicy(jitter=0).delay(k) for k in (1, 2, 3, 7, 20)] == [0.5, 1.0, 2.0, 30.0, 30.0]
    rng = random.Random(1)
    for k in range(1, 12):
        base = min(30.0, 0.5 * 2 ** (k - 1))
        assert base * 0.8 - 1e-9 <= policy.delay(k, rng=rng) <= min(30.0, base * 1.2) + 1e-9
    assert not policy.gives_up_after(100)
    assert ReconnectPolicy(max_attempts=3).gives_up_after(3)


# -- addresses, credentials and HTTP documents ---------------------------------------------------------


def test_server_address_keeps_the_path_prefix_and_drops_credentials() -> None:
    from comfydesk.backends.comfyui_http import ServerAddress

    addr = ServerAddress.parse("https://alice:s3cret@gpu.example:8443/comfy/?token=abc")
    assert addr.display == "https://gpu.example:8443/comfy"
    assert addr.http_base == "https://gpu.example:8443/comfy/"
    assert addr.ws_base == "wss://gpu.example:8443/comfy/"
    assert addr.userinfo == ("alice", "s3cret")
    plain = ServerAddress.parse("127.0.0.1:8188")
    assert (plain.display, plain.ws_base) == ("http://127.0.0.1:8188", "ws://127.0.0.1:8188/")
    with pytest.raises(ValueError):
        ServerAddress.parse("ftp://host")


def test_credentials_become_one_authorization_header_and_stay_out_of_errors() -> None:
    from comfydesk.backends.comfyui import ComfyUIBackend
    from comfydesk.backends.comfyui_http import auth_headers, scrub

    assert auth_headers("tok", ("u", "p")) == {"Authorization": "Bearer tok"}
    assert auth_headers(None, ("u", "p")) == {"Authorization": "Basic dTpw"}
    assert auth_headers(None, None) == {}
    assert scrub("refused token tok123 for u", ("tok123",)) == "refused token *** for u"
    backend = ComfyUIBackend("http://bob:hunter22@host:1/comfy", token="T0KEN-xyz")
    assert backend.url == "http://host:1/comfy"
    assert "hunter22" not in backend.url and "T0KEN" not in backend.url


def test_server_info_from_the_captured_system_stats() -> None:
    from comfydesk.backends.comfyui_documents import server_info_from_stats

    info = server_info_from_stats(load_json("system_stats.json"), url="http://h:1", name="h:1")
    assert (info.kind, info.version, info.os) == ("comfyui", "0.8.0", "linux")
    assert info.devices[0].name == "cpu" and info.devices[0].vram_total == 25276510208
    with pytest.raises(ServerResponseError):
        server_info_from_stats([], url="http://h:1")


def test_workflow_listings_from_captures() -> None:
    from comfydesk.backends.comfyui_documents import templates_from_index, userdata_workflows

    plain = userdata_workflows(load_json("misc/userdata_list.json"))
    full = userdata_workflows(load_json("userdata_list_full_info.json"))
    assert [w.id for w in plain] == [w.id for w in full] == ["userdata:demo.json", "userdata:sub/nested.json"]
    assert plain[1].name == "sub/nested" and plain[0].source == "userdata"
    templates = templates_from_index(load_json("templates_index.json"))
    assert len(templates) > 50 and all(t.source == "template" for t in templates)
    first = templates[0]
    assert first.id == "template:templates-color_illustration"
    assert first.name == "Add Color to Line Art Illustration" and first.category == "Use cases"


def test_catalog_from_bytes() -> None:
    from comfydesk.backends.comfyui_documents import catalog_from_bytes

    catalog = catalog_from_bytes((FIXTURES / "object_info_KSampler.json").read_bytes())
    assert "KSampler" in catalog
    with pytest.raises(ServerResponseError):
        catalog_from_bytes(b'{"KSampler": ')


# -- transport errors in a user's words -------------------------------------------------------------------


def _raised(outer: BaseException, *inner: BaseException) -> BaseException:
    """`outer` as raised `from` inner[0], itself raised from inner[1], ... (the chains httpx builds)."""
    chain = [outer, *inner]
    for exc, cause in itertools.pairwise(chain):
        exc.__cause__ = cause
    return outer


_MIXED = "Multiple exceptions: [Errno 111] Connect call failed, [Errno 101] Network is unreachable"


def _verify_error(message: str) -> ssl.SSLCertVerificationError:
    err = ssl.SSLCertVerificationError(
        1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}"
    )
    err.verify_message = message
    err.reason = "CERTIFICATE_VERIFY_FAILED"
    return err


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (
            _raised(
                httpx.ConnectError("All connection attempts failed"),
                OSError("All connection attempts failed"),
                ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)"),
            ),
            "connection refused (is ComfyUI running there?)",
        ),
        (
            ConnectionRefusedError(111, "Connect call failed"),
            "connection refused (is ComfyUI running there?)",
        ),
        (
            OSError(
                "Multiple exceptions: [Errno 111] Connect call failed ('::1', 9, 0, 0), "
                "[Errno 111] Connect call failed ('127.0.0.1', 9)"
            ),
            "connection refused (is ComfyUI running there?)",
        ),
        (
            _raised(httpx.ConnectError("[Errno -2] Name or service not known"), socket.gaierror(-2, "Name")),
            "host not found",
        ),
        (socket.gaierror(-3, "Temporary failure in name resolution"), "host not found"),
        (OSError(_MIXED), f"OSError: {_MIXED}"),  # not every address refused: say what happened
        (httpx.ReadTimeout("timed out"), "no answer within 2.5 s"),
        (_raised(httpx.ConnectTimeout(""), TimeoutError()), "no answer within 2.5 s"),
        (TimeoutError(), "no answer within 2.5 s"),
        (ConnectionResetError(104, "Connection reset by peer"), "the connection was reset by the server"),
        (
            httpx.RemoteProtocolError("illegal status line: bytearray(b'SSH-2.0')\nmore"),
            "RemoteProtocolError: illegal status line: bytearray(b'SSH-2.0')",
        ),
        (httpx.ReadError(""), "ReadError"),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            "the server hung up without answering (if it speaks https, use an https:// address)",
        ),
    ],
)
def test_transport_errors_read_like_a_sentence(exc: BaseException, cause: str) -> None:
    from comfydesk.backends.comfyui_http import describe_transport_error

    assert describe_transport_error(exc, timeout=2.5) == cause


def test_tls_errors_say_what_to_do() -> None:
    from comfydesk.backends.comfyui_http import describe_transport_error

    wrapped = _raised(
        httpx.ConnectError("certificate verify failed"), _verify_error("self-signed certificate")
    )
    text = describe_transport_error(wrapped, timeout=1)
    assert text.startswith("the server's TLS certificate could not be verified (self-signed certificate)")
    assert "CA file" in text and "connection profile" in text
    other_name = _verify_error("Hostname mismatch, certificate is not valid for 'gpu-box'.")
    assert describe_transport_error(other_name, timeout=1) == (
        "the server's TLS certificate is not valid for this address (Hostname mismatch, certificate is not "
        "valid for 'gpu-box'); connect with the host name or IP address the certificate was issued for"
    )
    plain = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    plain.reason = "WRONG_VERSION_NUMBER"
    assert describe_transport_error(plain, timeout=1) == (
        "the TLS handshake failed (wrong version number; does the server speak https?)"
    )


def test_exception_groups_and_cycles_are_searched() -> None:
    from comfydesk.backends.comfyui_http import describe_transport_error

    group = ExceptionGroup("connect", [ValueError("x"), ConnectionRefusedError(111, "refused")])
    assert describe_transport_error(group, timeout=1) == "connection refused (is ComfyUI running there?)"
    a, b = OSError("a"), OSError("b")
    a.__context__, b.__context__ = b, a  # a cycle must not hang the search
    assert describe_transport_error(a, timeout=1) == "OSError: a"


def test_unreachable_names_the_server_without_secrets() -> None:
    from comfydesk.backends.comfyui_http import ServerAddress, TransportConfig, make_ssl_context

    transport = TransportConfig(
        address=ServerAddress.parse("https://bob:pw-secret@gpu.example:8443/comfy"),
        headers={},
        ssl_context=make_ssl_context(ca_file=None, verify_tls=True),
        timeout=30,
        secrets=("pw-secret", "tok-secret-123"),
    )
    err = transport.unreachable(httpx.ConnectError("bad tok-secret-123 here"))
    assert err.url == "https://gpu.example:8443/comfy"
    assert err.cause == "ConnectError: bad *** here"
    timed_out = transport.unreachable(httpx.ConnectTimeout(""), "GET /api/system_stats")
    assert timed_out.cause == "no answer within 10 s (GET /api/system_stats)"  # the connect timeout
    assert (
        transport.unreachable(httpx.ReadTimeout(""), "GET /queue").cause
        == "no answer within 30 s (GET /queue)"
    )


def test_lost_connection_message_names_the_server() -> None:
    from comfydesk.backends.comfyui_protocol import lost_connection_message

    text = lost_connection_message("https://gpu.example:8443")
    assert "https://gpu.example:8443" in text and "lost" in text and "unknown" in text


def test_an_overnight_batch_does_not_keep_every_ended_run() -> None:
    """Ended runs are forgotten past the newest KEEP_ENDED_RUNS (a late message about a recent one is still
    ignored); runs not ended are never forgotten."""
    from comfydesk.backends.comfyui_protocol import KEEP_ENDED_RUNS

    mapper = ProtocolMapper()
    mapper.track("still-running")
    mapper.feed({"type": "execution_start", "data": {"prompt_id": "still-running"}})
    for i in range(KEEP_ENDED_RUNS * 4):
        pid = f"p{i}"
        mapper.track(pid)
        mapper.feed({"type": "execution_start", "data": {"prompt_id": pid}})
        mapper.feed({"type": "execution_success", "data": {"prompt_id": pid}})
    assert len(mapper.runs) <= KEEP_ENDED_RUNS * 2 + 1
    assert "still-running" in mapper.runs and not mapper.runs["still-running"].terminal
    newest = f"p{KEEP_ENDED_RUNS * 4 - 1}"
    assert mapper.runs[newest].terminal
    assert mapper.feed({"type": "execution_success", "data": {"prompt_id": newest}}) == []  # said once
    assert mapper.feed({"type": "executing", "data": {"node": "3", "prompt_id": "p0"}}) == []  # forgotten
