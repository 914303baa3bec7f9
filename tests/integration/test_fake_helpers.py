"""Helpers for the fake ComfyUI tests: record a run over a real WebSocket and summarise transcripts."""

from __future__ import annotations

import asyncio
import json
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from comfydesk.testing import RunningFake
from tests.conftest import FIXTURES

TIMEOUT = 10.0


@dataclass
class Message:
    kind: str  # "text" | "binary"
    type: str = ""
    data: Any = None
    event_type: int = 0
    payload: bytes = b""


@dataclass
class Recorder:
    ws: ClientConnection
    client_id: str
    messages: list[Message] = field(default_factory=list)

    async def next(self, timeout: float = TIMEOUT) -> Message:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(raw, bytes):
            (event,) = struct.unpack(">I", raw[:4])
            msg = Message("binary", event_type=event, payload=raw)
        else:
            parsed = json.loads(raw)
            msg = Message("text", type=parsed["type"], data=parsed.get("data"))
        self.messages.append(msg)
        return msg

    async def until(self, predicate: Any, timeout: float = TIMEOUT) -> Message:
        while True:
            msg = await self.next(timeout)
            if predicate(msg):
                return msg

    async def until_done(self, prompt_id: str) -> None:
        await self.until(
            lambda m: (
                m.type == "executing" and m.data.get("node") is None and m.data.get("prompt_id") == prompt_id
            )
        )


async def open_recorder(fake: RunningFake, *, preview_metadata: bool = False) -> Recorder:
    client_id = str(uuid.uuid4())
    ws = await connect(f"{fake.ws_url}?clientId={client_id}", max_size=None)
    rec = Recorder(ws, client_id)
    if preview_metadata:
        await ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
    return rec


def captured_request(run: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "prompts" / f"{run}.request.json").read_text())
    return data


def captured_transcript(run: str) -> list[Message]:
    out = []
    for line in (FIXTURES / "transcripts" / f"{run}.jsonl").read_text().splitlines():
        item = json.loads(line)
        if item["kind"] == "text":
            out.append(Message("text", type=item["data"]["type"], data=item["data"].get("data")))
        elif item["kind"] == "binary":
            out.append(Message("binary", event_type=item["event_type"]))
    return out


def shape(messages: list[Message]) -> list[tuple[Any, ...]]:
    """Message types in order, with the keys of each data dict and the binary event types."""
    out: list[tuple[Any, ...]] = []
    for m in messages:
        if m.kind == "binary":
            out.append(("binary", m.event_type))
        else:
            keys = tuple(sorted(m.data)) if isinstance(m.data, dict) else ()
            out.append((m.type, keys))
    return out


async def post_prompt(fake: RunningFake, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=fake.url, timeout=TIMEOUT) as client:
        return await client.post("/prompt", json=body)
