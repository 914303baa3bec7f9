"""The node catalog kept from the last session: read back equal, and only for the same server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfydesk.core.errors import CatalogError
from comfydesk.core.nodes import (
    NodeCatalog,
    catalog_from_cache,
    catalog_to_cache,
    listing_key,
    parse_object_info,
    summaries_from_cache,
)
from comfydesk.store.catalog_cache import FILE_FORMAT, CatalogCache, server_key
from tests.conftest import load_json


@pytest.mark.parametrize("name", ["object_info.json", "object_info_with_api_nodes.json"])
def test_round_trip_gives_an_equal_catalog(tmp_path: Path, name: str) -> None:
    catalog = parse_object_info(load_json(name))
    cache = CatalogCache(tmp_path)
    cache.save("http://127.0.0.1:8188", catalog)
    back = cache.load("http://127.0.0.1:8188")
    assert back is not None
    assert list(back) == list(catalog)
    for node_id, node in catalog.items():
        assert back[node_id] == node
        assert [type(i.choices) for i in back[node_id].inputs] == [type(i.choices) for i in node.inputs]
    assert back.warnings == catalog.warnings


def test_keeps_warnings_and_exact_big_integers() -> None:
    doc = {
        "Seed": {"input": {"required": {"seed": ["INT", {"default": 0, "max": 2**64 - 1}]}}, "output": []},
        "Broken": 5,
    }
    catalog = parse_object_info(doc)
    back = catalog_from_cache(json.loads(json.dumps(catalog_to_cache(catalog))))
    assert back["Seed"].inputs[0].max == 2**64 - 1
    assert back.warnings == catalog.warnings and len(back.warnings) == 1


def test_same_server_under_small_spelling_differences(tmp_path: Path) -> None:
    cache = CatalogCache(tmp_path)
    cache.save("http://MyBox:8188/", NodeCatalog([]))
    assert server_key("http://MyBox:8188/") == server_key("http://mybox:8188")
    assert cache.load("http://mybox:8188") is not None
    assert cache.load("http://mybox:8189") is None  # another server: nothing


def test_damaged_or_foreign_files_are_no_cache(tmp_path: Path) -> None:
    cache = CatalogCache(tmp_path)
    url = "http://127.0.0.1:8188"
    assert cache.load(url) is None  # never saved
    path = cache.save(url, parse_object_info(load_json("object_info_KSampler.json")))
    path.write_text("{ not json")
    assert cache.load(url) is None
    path.write_text(json.dumps({"server": server_key(url), "catalog": {"format": 999, "nodes": []}}))
    assert cache.load(url) is None
    path.write_text(json.dumps({"server": "http://elsewhere", "catalog": {"format": 1, "nodes": []}}))
    assert cache.load(url) is None
    path.write_text(json.dumps({"server": server_key(url), "catalog": {"format": 1, "nodes": [[1, 2]]}}))
    assert cache.load(url) is None


def test_reading_something_else_says_so() -> None:
    with pytest.raises(CatalogError, match="format"):
        catalog_from_cache({"nodes": []})
    with pytest.raises(CatalogError, match="damaged"):
        catalog_from_cache({"format": 1, "nodes": [["x"]]})


def test_summaries_list_what_the_catalog_lists_without_reading_the_definitions(tmp_path: Path) -> None:
    catalog = parse_object_info(load_json("object_info_with_api_nodes.json"))
    cache = CatalogCache(tmp_path)
    url = "http://127.0.0.1:8188"
    path = cache.save(url, catalog)
    summaries = cache.load_summaries(url)
    assert summaries is not None
    assert sorted(map(listing_key, summaries)) == sorted(map(listing_key, catalog.nodes()))
    assert {s.id: s.title for s in summaries} == {n.id: n.title for n in catalog.nodes()}
    lines = path.read_bytes().split(b"\n")
    assert len(lines) == 3 and json.loads(lines[0])["format"] == FILE_FORMAT
    assert len(lines[0]) + len(lines[1]) < len(lines[2]) / 4  # what the start parses is a small part
    assert cache.load_summaries("http://127.0.0.1:8189") is None  # another server: nothing


def test_a_cache_of_another_layout_or_cut_short_is_no_cache(tmp_path: Path) -> None:
    cache = CatalogCache(tmp_path)
    url = "http://127.0.0.1:8188"
    catalog = parse_object_info(load_json("object_info_KSampler.json"))
    path = cache.path_for(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The layout before summaries: one document.
    path.write_text(json.dumps({"server": server_key(url), "catalog": catalog_to_cache(catalog)}))
    assert cache.load(url) is None and cache.load_summaries(url) is None
    whole = cache.save(url, catalog).read_bytes()
    path.write_bytes(whole[: whole.rindex(b"\n")])  # the definitions' line lost
    assert cache.load(url) is None and cache.load_summaries(url) is None
    head, summary, body = whole.split(b"\n")
    path.write_bytes(b"\n".join([head, b"[[1, 2, 3]]", body]))  # damaged summaries; definitions read
    assert cache.load_summaries(url) is None
    back = cache.load(url)
    assert back is not None and list(back) == list(catalog)
    path.write_bytes(b"\n".join([head, summary, b"{ not json"]))
    assert cache.load(url) is None and cache.load_summaries(url) is not None


def test_reading_damaged_summaries_says_so() -> None:
    with pytest.raises(CatalogError, match="format"):
        summaries_from_cache({"nodes": []})
    with pytest.raises(CatalogError, match="damaged"):
        summaries_from_cache([["a", "A", "", "", False, False, "extra"]])
    with pytest.raises(CatalogError, match="damaged"):
        summaries_from_cache([[5]])
