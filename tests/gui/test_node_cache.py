"""The nodes pane: the catalog the server gave the last session at once, then the fresh one; filtering."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from pytestqt.qtbot import QtBot

from comfydesk.core.nodes import NodeCatalog, parse_object_info
from comfydesk.store.catalog_cache import CatalogCache
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.ui.node_pane import NodeIndex
from tests.conftest import FIXTURES, load_json
from tests.gui.helpers import OpenWindow, windows


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


@pytest.fixture
def slow_fake(tmp_path: Path) -> Iterator[RunningFake]:
    fake = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake", step_delay=0.0)
    )
    fake.faults.delay_route("/object_info", 1.5)  # the server takes its time to list its nodes
    yield fake
    fake.stop()


def test_cached_catalog_first_then_the_fresh_one(
    qtbot: QtBot, open_window: OpenWindow, tmp_path: Path, slow_fake: RunningFake, artifacts_dir: Path
) -> None:
    data = tmp_path / "data"
    cache = CatalogCache(data / "cache" / "catalogs")
    last_session = parse_object_info(
        {**load_json("object_info_KSampler.json"), **load_json("object_info_LoadImage.json")}
    )
    cache.save(slow_fake.url, last_session)
    fresh_count = len(load_json("object_info.json"))

    window = open_window(server=slow_fake.url, data_dir=data)
    pane = window.node_pane
    window.left_tabs.setCurrentWidget(pane)
    qtbot.waitUntil(lambda: sorted(pane.leaf_ids()) == ["KSampler", "LoadImage"], timeout=5_000)
    assert window.ctx.catalog.is_cached  # shown before the server answered /object_info
    assert "2 node types" in pane.details.toPlainText()
    pane.grab().save(str(artifacts_dir / "node-cache-1-cached.png"))

    qtbot.waitUntil(lambda: pane.shown_count() == fresh_count, timeout=15_000)
    assert not window.ctx.catalog.is_cached
    assert len(pane.leaf_ids()) == fresh_count
    # ... and it is kept for the next session
    qtbot.waitUntil(lambda: len(cache.load(slow_fake.url) or ()) == fresh_count, timeout=5_000)
    pane.search.setText("load image")
    pane.apply_filter_now()
    assert pane.leaf_ids()[0] == "LoadImage"  # the best match first
    pane.show_details_now()
    assert "Load Image" in pane.details.toPlainText()
    pane.grab().save(str(artifacts_dir / "node-cache-2-fresh-filtered.png"))


def test_another_servers_cache_is_not_shown(
    qtbot: QtBot, open_window: OpenWindow, tmp_path: Path, slow_fake: RunningFake
) -> None:
    data = tmp_path / "data"
    other = slow_fake.url.replace("127.0.0.1", "localhost")
    CatalogCache(data / "cache" / "catalogs").save(
        other, parse_object_info(load_json("object_info_KSampler.json"))
    )
    window = open_window(server=slow_fake.url, data_dir=data)
    received: list[object] = []
    window.ctx.catalog.catalog_changed.connect(received.append)
    qtbot.waitUntil(
        lambda: window.node_pane.shown_count() == len(load_json("object_info.json")), timeout=15_000
    )
    assert all(
        c is not None and len(c) != 1 for c in received
    )  # KSampler alone (the other server's) never came


@pytest.mark.parametrize(
    "text", ["load image", "l", "ksampler", "VAE dec", "image/video", "zzz-nothing", "  "]
)
def test_pane_filter_matches_what_catalog_search_matches(api_catalog: NodeCatalog, text: str) -> None:
    index = NodeIndex(api_catalog)
    for typed in [text[: i + 1] for i in range(len(text))]:  # typed letter by letter: the narrowing path
        got = index.filter(typed)
    want = api_catalog.search(text) if text.strip() else api_catalog.nodes()
    assert {n.id for n in got} == {n.id for n in want}
    if text.strip() == "load image":
        assert got[0].id == "LoadImage"  # the exact display name first
    assert index.filter(text) == got  # backspacing to a text already typed: the same answer


def test_pane_lists_ranked_matches_then_the_tree_again(qtbot: QtBot, api_catalog: NodeCatalog) -> None:
    from comfydesk.app.catalog import CatalogModel
    from comfydesk.app.tasks import ErrorModel, TaskRunner
    from comfydesk.ui.node_pane import NodePane

    model = CatalogModel(TaskRunner(ErrorModel()))
    pane = NodePane(model)
    qtbot.addWidget(pane)
    model.set_catalog(api_catalog)
    assert pane.shown_count() == len(api_catalog)
    assert pane.tree.topLevelItemCount() < len(api_catalog)  # categories only until one is opened
    first = pane.tree.topLevelItem(0)
    assert first is not None and first.childCount() == 0
    first.setExpanded(True)
    assert first.childCount() > 0  # made when opened
    qtbot.keyClicks(pane.search, "ksampler")
    qtbot.waitUntil(lambda: pane.leaf_ids()[:1] == ["KSampler"], timeout=2_000)
    qtbot.waitUntil(lambda: "KSampler" in pane.details.toPlainText(), timeout=2_000)
    pane.search.clear()
    pane.apply_filter_now()
    assert pane.shown_count() == len(api_catalog)
    assert pane.lists.currentWidget() is pane.tree


def test_switching_server_while_the_nodes_load_says_nothing_false(
    qtbot: QtBot, qloop: qasync.QEventLoop, open_window: OpenWindow, tmp_path: Path, slow_fake: RunningFake
) -> None:
    """The first server is still listing its nodes when the user picks another: that read is dropped
    quietly (no "cannot reach" about a server the user left), and the other server's nodes are shown."""
    from comfydesk.app.context import profile_for_url

    fast = start_fake_comfyui(
        FakeConfig(
            object_info=FIXTURES / "object_info_KSampler.json", data_dir=tmp_path / "fast", step_delay=0.0
        )
    )
    try:
        window = open_window(server=slow_fake.url, data_dir=tmp_path / "data")
        ctx = window.ctx
        errors: list[object] = []
        ctx.errors.error_changed.connect(lambda e: errors.append(e) if e is not None else None)
        qtbot.waitUntil(lambda: ctx.connection.backend is not None, timeout=10_000)
        assert ctx.catalog.catalog is None  # /object_info is held back 1.5 s
        ctx.connect_profile(profile_for_url(fast.url))
        qtbot.waitUntil(lambda: sorted(window.node_pane.leaf_ids()) == ["KSampler"], timeout=10_000)

        def reading() -> bool:
            names = [t.get_name() for t in asyncio.all_tasks(qloop) if not t.done()]
            return "Reading the node definitions" in names

        qtbot.waitUntil(lambda: not reading(), timeout=10_000)  # the old read is over too
        assert errors == [] and ctx.errors.error is None
        assert sorted(window.node_pane.leaf_ids()) == ["KSampler"]
    finally:
        fast.stop()


def test_a_catalog_listing_other_nodes_than_the_summaries_replaces_the_list(
    qtbot: QtBot, api_catalog: NodeCatalog
) -> None:
    """Summaries listed first (the start), then definitions that list something else (the server changed
    since the last session): the pane lists what the definitions list."""
    from comfydesk.core.nodes import NodeSummary
    from comfydesk.ui.node_pane import NodePane

    summaries = [NodeSummary(n.id, n.display_name, n.description, n.category) for n in api_catalog.nodes()]
    pane = NodePane(listing=summaries)
    qtbot.addWidget(pane)
    assert pane.shown_count() == len(api_catalog)
    fewer = NodeCatalog([n for n in api_catalog.nodes() if n.id != "KSampler"])
    pane.set_catalog(fewer)
    assert pane.shown_count() == len(api_catalog) - 1 and "KSampler" not in pane.leaf_ids()
    pane.search.setText("ksampler advanced")
    pane.apply_filter_now()
    pane.show_details_now()
    assert pane.leaf_ids()[:1] == ["KSamplerAdvanced"] and "Inputs" in pane.details.toPlainText()
