"""Probe findings 4 and 5: amplification and deep nesting in workflows, PNG metadata and object_info.

Each test feeds the exact shape the probe used and asserts a clear, typed error (never RecursionError, never
gigabytes of memory): bounds in `comfydesk.core.limits` and `comfydesk.core.convert`.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from comfydesk.core.convert import MAX_EXPANDED_NODES, MAX_LINK_HOPS, MAX_SUBGRAPH_DEPTH
from comfydesk.core.errors import CatalogError, ConversionError, WorkflowFormatError
from comfydesk.core.limits import JsonTooComplex, check_shape, loads_bounded, printable
from comfydesk.core.nodes import NodeCatalog, parse_object_info
from comfydesk.core.workflow import load_workflow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_catalog() -> NodeCatalog:
    return parse_object_info(json.loads((ROOT / "resources/demo/object_info.json").read_text("utf-8")))


def deep_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def _ui_node(
    node_id: int,
    kind: str,
    *,
    inputs: list[Any] | None = None,
    links: list[int] | None = None,
    out_type: str = "IMAGE",
    widgets: list[Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": kind,
        "mode": 0,
        "inputs": inputs or [],
        "outputs": [{"name": out_type, "type": out_type, "links": links or []}],
        "widgets_values": widgets or [],
    }


# -- deep JSON -------------------------------------------------------------------------------------------


def test_100k_deep_json_workflow_is_refused_clearly() -> None:
    with pytest.raises(WorkflowFormatError, match="nested more than 100 levels"):
        load_workflow(deep_list(100_000).encode(), source="deep.json")


def test_950_deep_list_inside_an_input_is_refused_clearly() -> None:
    doc = '{"1": {"class_type": "SaveImage", "inputs": {"images": ' + deep_list(950) + "}}}"
    with pytest.raises(WorkflowFormatError, match="too complex to open"):
        load_workflow(doc.encode(), source="input.json")
    # Already parsed (a caller handing a dict) is checked the same way, without recursion.
    with pytest.raises(WorkflowFormatError, match="nested more than"):
        load_workflow(json.loads(doc))


def test_check_shape_is_iterative_and_counts_containers() -> None:
    deep: list[Any] = []
    cur = deep
    for _ in range(200_000):  # far past the recursion limit
        nxt: list[Any] = []
        cur.append(nxt)
        cur = nxt
    with pytest.raises(JsonTooComplex, match="nested more than"):
        check_shape(deep)
    with pytest.raises(JsonTooComplex, match="more than 10 objects and lists"):
        check_shape([{} for _ in range(11)], max_containers=10)
    assert loads_bounded('{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}


def test_deep_object_info_file_is_a_catalog_error(tmp_path: Path) -> None:
    from comfydesk.commands._common import load_catalog_file

    path = tmp_path / "object_info.json"
    path.write_text('{"X": ' + deep_list(100_000) + "}", encoding="utf-8")
    with pytest.raises(CatalogError, match="nested more than"):
        load_catalog_file(path)


def test_deep_object_info_from_a_server_body_is_a_server_error() -> None:
    from comfydesk.backends.comfyui_documents import catalog_from_bytes
    from comfydesk.core.errors import ServerResponseError

    with pytest.raises(ServerResponseError, match="nested more than"):
        catalog_from_bytes(('{"X": ' + deep_list(100_000) + "}").encode())


# -- PNG text bomb -----------------------------------------------------------------------------------------


def _png_with_ztxt(key: str, text: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00\x00")
    ztxt = key.encode() + b"\x00\x00" + zlib.compress(text, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"zTXt", ztxt)
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def test_png_ztxt_that_inflates_to_63_mb_of_empty_objects_is_refused_fast() -> None:
    body = b"[" + b"{}," * 21_000_000 + b"{}]"  # 63 MB, as in the probe
    png = _png_with_ztxt("workflow", body)
    assert len(png) < 128 * 1024
    del body
    t0 = time.monotonic()
    with pytest.raises(WorkflowFormatError, match="too complex to open"):
        load_workflow(png, source="bomb.png")
    assert time.monotonic() - t0 < 10


# -- subgraph and link amplification -------------------------------------------------------------------


def _nested_subgraphs(levels: int, copies: int) -> dict[str, Any]:
    """Root holds `copies` instances of sg0; sg<k> holds `copies` instances of sg<k+1>; the last level holds
    EmptyImage nodes: copies**levels nodes once expanded, from a file of a few KB."""
    subgraphs = []
    for level in range(levels):
        inner = f"sg{level + 1}" if level + 1 < levels else "EmptyImage"
        nodes = [
            _ui_node(i + 1, inner, widgets=[8, 8, 1, 0] if inner == "EmptyImage" else [])
            for i in range(copies)
        ]
        subgraphs.append({"id": f"sg{level}", "name": f"level {level}", "nodes": nodes, "links": []})
    root = [_ui_node(i + 1, "sg0") for i in range(copies)]
    return {"nodes": root, "links": [], "definitions": {"subgraphs": subgraphs}, "version": 0.4}


def test_subgraphs_8_levels_10_copies_are_bounded(demo_catalog: NodeCatalog) -> None:
    doc = _nested_subgraphs(8, 10)
    assert len(json.dumps(doc)) < 16 * 1024
    t0 = time.monotonic()
    with pytest.raises(ConversionError, match=f"more than {MAX_EXPANDED_NODES:,} nodes"):
        load_workflow(json.dumps(doc).encode(), catalog=demo_catalog, source="bomb.json")
    assert time.monotonic() - t0 < 10


def test_2000_nested_subgraphs_fail_clearly(demo_catalog: NodeCatalog) -> None:
    doc = _nested_subgraphs(2000, 1)
    with pytest.raises(ConversionError, match=f"nested more than {MAX_SUBGRAPH_DEPTH} levels"):
        load_workflow(json.dumps(doc).encode(), catalog=demo_catalog, source="nested.json")


def test_5000_chained_reroutes_fail_clearly(demo_catalog: NodeCatalog) -> None:
    n = 5000
    nodes = [_ui_node(1, "EmptyImage", links=[1], widgets=[8, 8, 1, 0])]
    links = []
    for i in range(n):
        node_id = i + 2
        nodes.append(
            _ui_node(
                node_id,
                "Reroute",
                inputs=[{"name": "", "type": "*", "link": i + 1}],
                links=[i + 2],
                out_type="*",
            )
        )
        links.append([i + 1, node_id - 1, 0, node_id, 0, "IMAGE"])
    save_id = n + 2
    nodes.append(
        {
            "id": save_id,
            "type": "SaveImage",
            "mode": 0,
            "inputs": [{"name": "images", "type": "IMAGE", "link": n + 1}],
            "outputs": [],
            "widgets_values": ["x"],
        }
    )
    links.append([n + 1, save_id - 1, 0, save_id, 0, "IMAGE"])
    doc = {"nodes": nodes, "links": links, "version": 0.4}
    with pytest.raises(ConversionError, match=f"more than {MAX_LINK_HOPS} Reroutes"):
        load_workflow(json.dumps(doc).encode(), catalog=demo_catalog, source="reroutes.json")


def test_a_short_reroute_chain_still_converts(demo_catalog: NodeCatalog) -> None:
    nodes = [_ui_node(1, "EmptyImage", links=[1], widgets=[8, 8, 1, 0])]
    nodes.append(
        _ui_node(2, "Reroute", inputs=[{"name": "", "type": "*", "link": 1}], links=[2], out_type="*")
    )
    nodes.append(
        {
            "id": 3,
            "type": "SaveImage",
            "mode": 0,
            "inputs": [{"name": "images", "type": "IMAGE", "link": 2}],
            "outputs": [],
            "widgets_values": ["x"],
        }
    )
    links = [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]]
    wf = load_workflow(json.dumps({"nodes": nodes, "links": links, "version": 0.4}), catalog=demo_catalog)
    assert wf.graph["3"].inputs["images"] == ["1", 0]


# -- text made printable -----------------------------------------------------------------------------------


def test_printable_strips_terminal_escapes_and_newlines() -> None:
    assert printable("x\x1b]0;PWNED\x07\x1b[2J.png") == "x]0;PWNED[2J.png"
    assert printable("a\nb\r\tc\x00") == "abc"
    assert printable("line1\nline2\x1b[31m", keep_newlines=True) == "line1\nline2[31m"
    assert printable("ok \u202eevil") == "ok evil"


def test_cli_convert_and_nodes_refuse_100k_deep_files_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from comfydesk.cli import main

    deep = tmp_path / "deep.json"
    deep.write_text(deep_list(100_000), encoding="utf-8")
    assert main(["convert", str(deep)]) == 1
    assert main(["nodes", "--object-info", str(deep)]) == 1
    err = capsys.readouterr().err
    assert err.count("nested more than 100 levels deep") == 2
    assert "Traceback" not in err and "RecursionError" not in err
