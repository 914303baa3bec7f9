"""The catalogue of plain messages: every entry comes out of a real-shaped input (the captured ComfyUI error
bodies, our own validation issues and errors, ComfyUI-shaped run failures), in words without server paths,
exception class names or emptiness; the technical part stays in the details."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from comfydesk.backends.comfyui_documents import prompt_error
from comfydesk.backends.v1_errors import BackendUnavailable, RateLimited, TokenRejected
from comfydesk.core.errors import (
    AuthenticationError,
    CatalogError,
    ComfyDeskError,
    ConversionError,
    ExecutionInterrupted,
    OutputUnavailable,
    ServerUnreachable,
    UnknownNodeTypeError,
    UnsafeInputError,
    ValidationError,
    ValidationIssue,
    WorkflowError,
    WorkflowFormatError,
)
from comfydesk.core.events import FailureInfo
from comfydesk.core.messages import (
    CATALOGUE,
    TOKEN_HINT,
    TOKEN_REJECTED,
    Message,
    for_connection_lost,
    for_disconnect,
    for_exception,
    for_failure,
    for_issue,
    for_validation,
    short_paths,
)
from tests.conftest import FIXTURES

ERRORS = FIXTURES / "errors"
PIL_TRACEBACK = (
    '  File "/srv/ComfyUI/execution.py", line 496, in execute\n    output_data = get_output_data(obj)\n',
    '  File "/srv/ComfyUI/nodes.py", line 1681, in load_image\n    img = Image.open(image_path)\n',
)


def server_issue(fixture: str) -> ValidationIssue:
    """The first issue of a captured `POST /prompt` error body, as the backend parses it."""
    doc = json.loads((ERRORS / f"{fixture}.json").read_text(encoding="utf-8"))
    body = doc["body"] if isinstance(doc["body"], str) else json.dumps(doc["body"])
    exc = prompt_error(int(doc["status"]), body)
    assert isinstance(exc, ValidationError)
    return exc.issues[0]


def form_issue(kind: str, message: str, *, input_name: str, received: Any) -> ValidationIssue:
    """An issue as the form's own check (`FormSpec.validate`) words it."""
    return ValidationIssue(
        node_id="1",
        node_title="Load Image",
        input_name=input_name,
        message=message,
        kind=kind,
        field_key=f"1.{input_name}",
        received=received,
    )


def failure(exception_type: str, message: str, node_type: str = "LoadImage") -> Message:
    info = FailureInfo(
        message=message + "\n",
        node_id="10",
        node_type=node_type,
        exception_type=exception_type,
        traceback=PIL_TRACEBACK,
    )
    return for_failure(info)


Producer = Callable[[], "Message | str"]

CASES: list[tuple[str, str, Producer]] = [
    # -- problems with a value --------------------------------------------------------------------------
    (
        "missing_image",
        "missing_photo.png",
        lambda: for_issue(
            form_issue(
                "value_not_in_list",
                "Image must be one of the listed options, got the text 'missing_photo.png'.",
                input_name="image",
                received="missing_photo.png",
            )
        ),
    ),
    ("missing_image", "does_not_exist.png", lambda: for_issue(server_issue("loadimage_missing_file"))),
    (
        "missing_model",
        "sdxl_base.safetensors",
        lambda: for_issue(
            ValidationIssue(
                node_id="4",
                node_title="Load Checkpoint",
                input_name="ckpt_name",
                message="Value not in list: ckpt_name: 'sdxl_base.safetensors' not in ['tiny.safetensors']",
                kind="value_not_in_list",
                received="sdxl_base.safetensors",
            )
        ),
    ),
    ("value_not_in_list", "nearest-banana", lambda: for_issue(server_issue("combo_value_not_in_list"))),
    ("value_bigger_than_max", "31", lambda: for_issue(server_issue("int_out_of_range"))),
    (
        "value_bigger_than_max",
        "2048",
        lambda: for_issue(
            form_issue(
                "value_bigger_than_max",
                "Width must be at most 2048, got 100000.",
                input_name="width",
                received=100000,
            )
        ),
    ),
    (
        "value_smaller_than_min",
        "16",
        lambda: for_issue(
            form_issue(
                "value_smaller_than_min", "Width must be at least 16, got 2.", input_name="width", received=2
            )
        ),
    ),
    ("invalid_input_type", "a whole number", lambda: for_issue(server_issue("int_wrong_type"))),
    ("required_input_missing", "", lambda: for_issue(server_issue("missing_required_input"))),
    ("broken_link", "", lambda: for_issue(server_issue("link_to_missing_node"))),
    ("unknown_node_type", "NoSuchNodeClass", lambda: for_issue(server_issue("unknown_class_type"))),
    ("prompt_no_outputs", "", lambda: for_issue(server_issue("no_output_node"))),
    (
        "invalid_value",
        "",
        lambda: for_issue(
            ValidationIssue(node_id="3", message="Something new the server says", kind="brand_new_check")
        ),
    ),
    (
        "validation_on_fields",
        "",
        lambda: for_exception(
            ValidationError(
                [
                    form_issue(
                        "value_not_in_list", "x", input_name="image", received="/srv/ComfyUI/input/a.png"
                    )
                ]
            )
        ),
    ),
    # -- comfydesk's own errors ------------------------------------------------------------------------
    (
        "ServerUnreachable",
        "",
        lambda: for_exception(
            ServerUnreachable("http://127.0.0.1:8188", "ConnectError: [Errno 111] refused")
        ),
    ),
    ("BackendUnavailable", "", lambda: for_exception(BackendUnavailable("https://gw.example", "all busy"))),
    ("AuthenticationError", "", lambda: for_exception(AuthenticationError("http://127.0.0.1:8188", 403))),
    ("TokenRejected", "", lambda: for_exception(TokenRejected("https://gw.example", token_given=True))),
    ("RateLimited", "", lambda: for_exception(RateLimited("the gateway is rate-limiting this token"))),
    (
        "ServerResponseError",
        "",
        lambda: for_exception(
            prompt_error(500, "500 Internal Server Error\n\nServer got itself in trouble")  # malformed_json
        ),
    ),
    (
        "OutputUnavailable",
        "",
        lambda: for_exception(OutputUnavailable("/srv/ComfyUI/output/ComfyUI_00001_.png is gone (HTTP 404)")),
    ),
    (
        "ExecutionInterrupted",
        "",
        lambda: for_exception(ExecutionInterrupted("interrupted by another client")),
    ),
    (
        "UnsafeInputError",
        "",
        lambda: for_exception(
            UnsafeInputError("/home/ann/bomb.png: 40000x40000 pixels is a decompression bomb")
        ),
    ),
    (
        "WorkflowFormatError",
        "",
        lambda: for_exception(
            WorkflowFormatError("not JSON: Expecting value", source="/home/ann/flows/a.json")
        ),
    ),
    (
        "UnknownNodeTypeError",
        "FancyUpscaler",
        lambda: for_exception(UnknownNodeTypeError(["FancyUpscaler"], source="/home/ann/flows/up.json")),
    ),
    ("ConversionError", "", lambda: for_exception(ConversionError("link 7 has no origin node"))),
    ("CatalogError", "", lambda: for_exception(CatalogError("object_info is not a JSON object"))),
    ("unexpected", "", lambda: for_exception(KeyError("/srv/ComfyUI/models/x"))),
    # -- a node failing while the server runs the graph -----------------------------------------------
    (
        "broken_image",
        "bad.png",
        lambda: failure(
            "PIL.UnidentifiedImageError",
            "cannot identify image file '/tmp/comfydesk-demo-1x2y/input/bad.png'",
        ),
    ),
    (
        "out_of_memory",
        "KSampler",
        lambda: failure(
            "torch.OutOfMemoryError",
            "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 8.00 GiB total capacity)",
            node_type="KSampler",
        ),
    ),
    (
        "file_missing_at_run",
        "mask.png",
        lambda: failure(
            "FileNotFoundError", "[Errno 2] No such file or directory: '/srv/ComfyUI/input/mask.png'"
        ),
    ),
    (
        "missing_model",
        "lcm.safetensors",
        lambda: failure(
            "FileNotFoundError",
            "[Errno 2] No such file or directory: '/srv/ComfyUI/models/loras/lcm.safetensors'",
            node_type="LoraLoader",
        ),
    ),
    (
        "node_failed",
        "out.png",
        lambda: failure("RuntimeError", "could not write /srv/ComfyUI/output/out.png", node_type="SaveImage"),
    ),
    ("node_failed_quiet", "TestFail", lambda: failure("RuntimeError", "", node_type="TestFail")),
    ("no_thumbnail", "", lambda: CATALOGUE["no_thumbnail"]),
    (
        "connection_lost",
        "",
        lambda: for_connection_lost("ConnectionClosedError: no close frame received or sent"),
    ),
    ("missing_model_marker", "", lambda: CATALOGUE["missing_model_marker"]),
    (
        "no_answer",
        "127.0.0.1:8188",
        lambda: for_disconnect(
            "gave up after 3 attempts in 9 s: cannot reach http://127.0.0.1:8188: "
            "[Errno 111] Connection refused"
        ),
    ),
    (
        "connection_ended",
        "",
        lambda: for_disconnect("event stream stopped: RuntimeError: /srv/comfy/ws.py exploded"),
    ),
    ("not_connected", "", lambda: for_disconnect("not connected")),
]

CLASS_NAME = re.compile(r"\b[A-Z]\w*(?:Error|Exception)\b")
PATHY = re.compile(r"(/srv|/tmp|/home|[A-Za-z]:\\|ComfyUI/)")


def _fragments(template: str) -> list[str]:
    """The fixed words of a catalogue entry (between its `{name}` slots)."""
    return [part.strip(" “”") for part in re.split(r"\{\w+\}", template) if len(part.strip(" “”")) > 3]


@pytest.mark.parametrize(("kind", "named", "make"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_message_is_plain_and_complete(kind: str, named: str, make: Producer) -> None:
    out = make()
    text = out.text if isinstance(out, Message) else out
    assert text.strip(), "empty message"
    for fragment in _fragments(CATALOGUE[kind]):
        assert fragment in text, f"{kind}: {fragment!r} not in {text!r}"
    if named:
        assert named in text
    assert not PATHY.search(text), f"a path leaks: {text!r}"
    assert not CLASS_NAME.search(text), f"an exception name in the short text: {text!r}"
    assert text.rstrip().endswith((".", "…", "on.")), text
    assert len(text) < 300
    if isinstance(out, Message):
        assert out.title and not PATHY.search(out.title)


def test_every_catalogue_entry_has_a_case() -> None:
    assert {kind for kind, _, _ in CASES} == set(CATALOGUE)


def test_details_keep_the_technical_part() -> None:
    msg = failure(
        "PIL.UnidentifiedImageError", "cannot identify image file '/tmp/comfydesk-demo-1/input/bad.png'"
    )
    assert "UnidentifiedImageError" in msg.details
    assert "/tmp/comfydesk-demo-1/input/bad.png" in msg.details  # the details are for a bug report
    assert "nodes.py" in msg.details and "Node: LoadImage (#10)" in msg.details
    unreachable = for_exception(ServerUnreachable("http://127.0.0.1:8188", "[Errno 111] Connection refused"))
    assert "ServerUnreachable" in unreachable.details and "Errno 111" in unreachable.details


def test_loose_validation_issue_names_its_place() -> None:
    issue = ValidationIssue(
        node_id="12", node_title="Upscale", input_name="upscale_method", message="x", kind="value_not_in_list"
    )
    msg = for_validation([issue, issue], on_fields=False)
    assert msg.text.startswith("Upscale › Upscale method: ")
    assert "1 more" in msg.text


def test_a_plain_comfydesk_error_keeps_its_own_words_without_paths() -> None:
    msg = for_exception(
        ComfyDeskError(
            "no workflow is ready to run in /home/ann/flows", hint="Pick a workflow from the library."
        )
    )
    assert msg.text == "No workflow is ready to run in flows. Pick a workflow from the library."


@pytest.mark.parametrize(
    ("raw", "short"),
    [
        (
            "cannot identify image file '/tmp/comfydesk-demo-ab/input/bad.png'",
            "cannot identify image file 'bad.png'",
        ),
        (r"C:\ComfyUI\models\checkpoints\sd15.ckpt missing", "sd15.ckpt missing"),
        ("see http://127.0.0.1:8188/view?filename=a.png", "see http://127.0.0.1:8188/view?filename=a.png"),
        ("file:///srv/ComfyUI/output/", "output"),
        ("no path here: 3/4 done", "no path here: 3/4 done"),
    ],
)
def test_short_paths(raw: str, short: str) -> None:
    assert short_paths(raw) == short


def test_a_dropped_connection_says_why_in_plain_words_and_keeps_the_reason() -> None:
    unreachable = for_disconnect("cannot reach http://10.0.0.5:8188: All connection attempts failed")
    assert unreachable.title == "Can't reach 10.0.0.5:8188"
    assert "All connection attempts failed" in unreachable.details
    assert "All connection" not in unreachable.text
    rejected = for_disconnect("The server rejected the token")
    assert (rejected.title, rejected.text) == (TOKEN_REJECTED, TOKEN_HINT)
    assert CATALOGUE["TokenRejected"] == f"{TOKEN_REJECTED}. {TOKEN_HINT}"  # one source for both
    refused = for_disconnect("http://h:1 refused the credentials (HTTP 401)")
    assert refused.text == CATALOGUE["AuthenticationError"] and "HTTP 401" in refused.details
    assert for_disconnect("closed").details == "" and for_disconnect("").title == "Not connected"


def test_a_workflow_error_keeps_its_file_path_for_the_details() -> None:
    msg = for_exception(WorkflowFormatError("not valid JSON (line 1)", source="/home/ann/flows/broken.json"))
    assert msg.text == CATALOGUE["WorkflowFormatError"]
    assert "/home/ann/flows/broken.json" in msg.details and "not valid JSON" in msg.details
    exc = WorkflowError("connect to the server to open its workflows", source="/srv/x/a.json")
    plain = for_exception(exc)
    assert plain.text == "Connect to the server to open its workflows." and "/srv/x/a.json" in plain.details
