"""Fuzzing the parsers that take hostile input (hypothesis): WebSocket messages and frames, workflow
documents, PNG metadata. Whatever comes in, the outcome is a result or a typed, plain error: never a crash.

The normal run tries a few hundred cases per target; the soak run (`-m soak`) tries many thousands.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfydesk.backends.comfyui_protocol import _HANDLERS, ProtocolMapper, parse_binary_frame
from comfydesk.core.errors import ComfyDeskError
from comfydesk.core.pngmeta import read_embedded_workflow
from comfydesk.core.workflow import load_workflow

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOAK = settings(max_examples=5_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=40,
)
keys = st.sampled_from(
    [
        "prompt_id",
        "node",
        "nodes",
        "value",
        "max",
        "output",
        "display_node",
        "executed",
        "exception_message",
        "traceback",
        "node_id",
        "node_type",
        "status",
        "exec_info",
        "queue_remaining",
        "images",
        "filename",
    ]
)
message_data = st.dictionaries(keys, st.one_of(json_values, st.just("p")), max_size=8).map(
    lambda d: {**d, "prompt_id": "p"} if len(d) % 2 else d
)
messages = st.builds(
    lambda kind, data: {"type": kind, "data": data},
    st.sampled_from(sorted(_HANDLERS)) | st.text(max_size=10),
    message_data | json_values,
)


def _feed(batch: list[Any]) -> None:
    mapper = ProtocolMapper()
    mapper.track("p")
    for msg in batch:
        events = mapper.feed_text(json.dumps(msg)) if isinstance(msg, dict) else mapper.feed(msg)
        assert isinstance(events, list)


@FAST
@given(st.lists(messages, max_size=12))
def test_any_websocket_messages_map_without_error(batch: list[Any]) -> None:
    _feed(batch)


@FAST
@given(st.binary(max_size=64), st.integers(0, 8), st.integers(0, 2**32 - 1))
def test_any_binary_frame_parses_or_is_ignored(tail: bytes, kind: int, length: int) -> None:
    frame = struct.pack(">II", kind, length) + tail
    parse_binary_frame(frame)
    mapper = ProtocolMapper()
    mapper.track("p")
    assert isinstance(mapper.feed_binary(frame), list)


def _load(doc: Any) -> None:
    try:
        workflow = load_workflow(json.dumps(doc).encode())
    except ComfyDeskError as exc:
        assert exc.message.strip()  # a sentence for the user, not an empty error
        return
    assert workflow.graph is not None


@FAST
@given(json_values)
def test_any_json_document_loads_or_is_a_workflow_error(doc: Any) -> None:
    _load(doc)


@FAST
@given(
    st.dictionaries(
        st.text(max_size=4),
        st.dictionaries(st.sampled_from(["class_type", "inputs", "_meta"]), json_values),
        max_size=4,
    )
)
def test_api_shaped_documents_load_or_fail_clearly(doc: Any) -> None:
    _load(doc)


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in chunks:
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return out


text_chunks = st.tuples(
    st.sampled_from([b"tEXt", b"zTXt", b"iTXt", b"IDAT"]),
    st.one_of(
        st.binary(max_size=40),
        st.builds(lambda v: b"workflow\x00" + v.encode("latin-1", "replace"), st.text(max_size=40)),
        st.builds(lambda v: b"prompt\x00\x00" + zlib.compress(v), st.binary(max_size=40)),
    ),
)


@FAST
@given(st.lists(text_chunks, max_size=4), st.booleans())
def test_any_png_metadata_reads_or_is_a_format_error(chunks: list[tuple[bytes, bytes]], end: bool) -> None:
    data = _png([*chunks, *([(b"IEND", b"")] if end else [])])
    try:
        found = read_embedded_workflow(data)
    except ComfyDeskError:
        return
    assert isinstance(found, dict)


@pytest.mark.soak
@SOAK
@given(st.lists(messages, max_size=30))
def test_soak_websocket_messages(batch: list[Any]) -> None:
    _feed(batch)


@pytest.mark.soak
@SOAK
@given(json_values)
def test_soak_json_documents(doc: Any) -> None:
    _load(doc)
