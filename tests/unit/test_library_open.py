"""Opening a library file with its form, and the cache of the files opened last (app/library_open.py):
going back to a workflow reuses what was opened only while the file, the catalog and the entry are the
same."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from comfydesk.app.library_open import LibraryEntry, OpenedCache, open_local
from comfydesk.core.nodes import NodeCatalog
from tests.conftest import FIXTURES

UI = FIXTURES / "workflows" / "ui"


def _entry(path: Path) -> LibraryEntry:
    return LibraryEntry(f"local:{path.name}", path.stem, "local", path=path)


def _copy(tmp_path: Path, name: str = "default.json") -> Path:
    target = tmp_path / name
    shutil.copyfile(UI / name, target)
    return target


def _prompt_text(path: Path, catalog: NodeCatalog, cache: OpenedCache) -> str:
    entry = _entry(path)
    result, opened = open_local(entry, catalog, cache.get(entry.key))
    if opened is not None:
        cache.put(opened)
    assert result.spec is not None, result.error
    [text] = [
        n.inputs["text"]
        for n in result.spec.graph.values()
        if n.class_type == "CLIPTextEncode" and "beautiful" in str(n.inputs["text"])
    ]
    return str(text)


def test_an_unchanged_file_is_opened_once(tmp_path: Path, catalog: NodeCatalog) -> None:
    path = _copy(tmp_path)
    entry = _entry(path)
    first, opened = open_local(entry, catalog, None)
    assert first.spec is not None and first.workflow is not None and opened is not None
    again, kept = open_local(entry, catalog, opened)
    assert again is first and kept is opened


def test_a_file_changed_on_disk_is_read_again(tmp_path: Path, catalog: NodeCatalog) -> None:
    path = _copy(tmp_path)
    cache = OpenedCache()
    assert "beautiful scenery" in _prompt_text(path, catalog, cache)
    doc = json.loads(path.read_text(encoding="utf-8"))
    for node in doc["nodes"]:
        values = node.get("widgets_values")
        if node["type"] == "CLIPTextEncode" and values and "beautiful" in values[0]:
            values[0] = "a beautiful lighthouse at dusk"
    st = path.stat()
    path.write_text(json.dumps(doc), encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a coarse clock still sees it
    assert _prompt_text(path, catalog, cache) == "a beautiful lighthouse at dusk"


def test_another_catalog_or_entry_opens_the_file_again(tmp_path: Path, catalog: NodeCatalog) -> None:
    path = _copy(tmp_path)
    entry = _entry(path)
    first, opened = open_local(entry, catalog, None)
    other = NodeCatalog(list(catalog.values()))  # equal content, another catalog object (a reconnect)
    again, _ = open_local(entry, other, opened)
    assert again is not first and again.spec is not None
    renamed = LibraryEntry(entry.key, "Renamed", "local", path=path)
    third, _ = open_local(renamed, catalog, opened)
    assert third is not first and third.workflow is not None and third.workflow.name == "Renamed"


def test_a_file_that_cannot_be_opened_is_not_kept(tmp_path: Path, catalog: NodeCatalog) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"nodes": [', encoding="utf-8")
    result, opened = open_local(_entry(broken), catalog, None)
    assert result.spec is None and "JSON" in result.error_details and opened is None
    gone = tmp_path / "gone.json"
    result, opened = open_local(_entry(gone), catalog, None)
    assert result.spec is None and result.error and opened is None


def test_the_cache_keeps_the_newest_workflows(tmp_path: Path, catalog: NodeCatalog) -> None:
    cache = OpenedCache(size=2)
    paths = [
        _copy(tmp_path, name) for name in ("default.json", "flux_schnell.json", "sdxlturbo_example.json")
    ]
    for path in paths:
        _, opened = open_local(_entry(path), catalog, None)
        assert opened is not None
        cache.put(opened)
    assert len(cache) == 2
    assert cache.get(f"local:{paths[0].name}") is None
    assert cache.get(f"local:{paths[2].name}") is not None
    cache.clear()
    assert len(cache) == 0
