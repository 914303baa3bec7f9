"""Shared fixtures: where the real ComfyUI captures live, and loaded catalogs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from comfydesk.core.nodes import NodeCatalog, parse_object_info

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("COMFYDESK_FIXTURES", ROOT.parent / "shared" / "fixtures" / "comfyui"))


def load_json(rel: str) -> Any:
    return json.loads((FIXTURES / rel).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    assert FIXTURES.is_dir(), f"ComfyUI captures not found at {FIXTURES} (set COMFYDESK_FIXTURES)"
    return FIXTURES


@pytest.fixture(scope="session")
def object_info() -> dict[str, Any]:
    return load_json("object_info.json")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def catalog(object_info: dict[str, Any]) -> NodeCatalog:
    return parse_object_info(object_info)


@pytest.fixture(scope="session")
def api_catalog() -> NodeCatalog:
    return parse_object_info(load_json("object_info_with_api_nodes.json"))
