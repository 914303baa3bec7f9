"""Shared fixtures: where the real ComfyUI captures live, and loaded catalogs."""

from __future__ import annotations

import faulthandler
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from comfydesk.core.nodes import NodeCatalog, parse_object_info

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("COMFYDESK_FIXTURES", ROOT.parent / "shared" / "fixtures" / "comfyui"))


def pytest_configure(config: pytest.Config) -> None:
    """A crash prints the crashing thread's stack alone: pytest's own handler (turned off in pyproject)
    prints every thread, and the one that matters gets lost among the idle workers in a long CI log.
    Output capture is suspended here, so this is the real stderr; a duplicate keeps it when fd 2 is
    captured later."""
    faulthandler.enable(file=os.fdopen(os.dup(sys.stderr.fileno()), "w"), all_threads=False)


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
