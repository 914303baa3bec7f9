"""The nodes pane: the connected server's node catalog by category, a filter-as-you-type search, and a
details view (display name, description, inputs with type/default/range/choices, outputs, marks)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer
from PySide6.QtWidgets import (
    QLineEdit,
    QListView,
    QSplitter,
    QStackedWidget,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from comfydesk.core.nodes import (
    CategoryTree,
    InputSpec,
    NodeCatalog,
    NodeDef,
    NodeListing,
    category_tree,
    listing_key,
)

if TYPE_CHECKING:
    from comfydesk.app.catalog import CatalogModel

__all__ = ["NodePane", "node_details_html"]

ID_ROLE = Qt.ItemDataRole.UserRole
DISPLAY_ROLE = Qt.ItemDataRole.DisplayRole
TOOLTIP_ROLE = Qt.ItemDataRole.ToolTipRole
PATH_ROLE = Qt.ItemDataRole.UserRole + 1
_ROOT = QModelIndex()
_MAX_CHOICES = 12
DETAILS_DELAY_MS = 150
RECENT_FILTERS = 64


def _fmt(value: object) -> str:
    if isinstance(value, str):
        return html.escape(repr(value) if len(value) < 60 else repr(value[:57] + "…"))
    return html.escape(str(value))


def _input_row(spec: InputSpec) -> str:
    bits: list[str] = []
    if spec.default is not None:
        bits.append(f"default {_fmt(spec.default)}")
    if spec.min is not None or spec.max is not None:
        lo = "" if spec.min is None else _fmt(spec.min)
        hi = "" if spec.max is None else _fmt(spec.max)
        bits.append(f"range {lo} … {hi}")
    if spec.step is not None:
        bits.append(f"step {_fmt(spec.step)}")
    if spec.choices is not None:
        shown = ", ".join(_fmt(c) for c in spec.choices[:_MAX_CHOICES])
        more = f" … ({len(spec.choices) - _MAX_CHOICES} more)" if len(spec.choices) > _MAX_CHOICES else ""
        bits.append(f"choices: {shown}{more}" if spec.choices else "choices: (none on the server)")
    if spec.multiline:
        bits.append("multi-line")
    if not spec.required:
        bits.append("optional")
    if spec.is_link_only or spec.force_input:
        bits.append("linked from another node")
    tip = f"<br><i>{html.escape(spec.tooltip)}</i>" if spec.tooltip else ""
    return (
        f"<tr><td><b>{html.escape(spec.label)}</b></td><td><code>{html.escape(spec.type)}</code></td>"
        f"<td>{'; '.join(bits)}{tip}</td></tr>"
    )


def node_details_html(node: NodeDef) -> str:
    """The details view of one node, as simple HTML (palette colours only)."""
    marks = [
        label
        for flag, label in (
            (node.deprecated, "DEPRECATED"),
            (node.experimental, "EXPERIMENTAL"),
            (node.api_node, "API node"),
            (node.output_node, "output node"),
        )
        if flag
    ]
    parts = [f"<h3>{html.escape(node.title)}</h3>", f"<p><code>{html.escape(node.id)}</code>"]
    if node.category:
        parts.append(f" · {html.escape(node.category)}")
    if marks:
        parts.append(" · <b>" + " · ".join(marks) + "</b>")
    parts.append("</p>")
    if node.description:
        parts.append(f"<p>{html.escape(node.description)}</p>")
    visible = node.visible_inputs
    parts.append("<h4>Inputs</h4>")
    if visible:
        parts.append("<table cellspacing='4'>" + "".join(_input_row(i) for i in visible) + "</table>")
    else:
        parts.append("<p>none</p>")
    parts.append("<h4>Outputs</h4>")
    if node.outputs:
        rows = "".join(
            f"<tr><td><b>{html.escape(o.name)}</b></td><td><code>{html.escape(o.type)}</code></td>"
            f"<td>{'list' if o.is_list else ''} {html.escape(o.tooltip)}</td></tr>"
            for o in node.outputs
        )
        parts.append(f"<table cellspacing='4'>{rows}</table>")
    else:
        parts.append("<p>none</p>")
    return "".join(parts)


class NodeIndex:
    """A catalog ready for filtering as the user types: every node's searchable text in lower case, once.

    A node matches when every word of the filter is in its display name, id, category or description (as
    `NodeCatalog.search`); matches are ranked by display name: equal, then starting with the first word, then
    a word of it starting with it, then containing it, then the rest, each alphabetically.
    """

    def __init__(self, catalog: NodeCatalog | Sequence[NodeListing]) -> None:
        listed = catalog.nodes() if isinstance(catalog, NodeCatalog) else catalog
        nodes: list[NodeListing] = sorted(listed, key=lambda n: n.title.lower())
        self.nodes = nodes
        self._titles = [n.title.lower() for n in nodes]
        self._hay = [
            f"{t}\n{n.id.lower()}\n{n.category.lower()}\n{n.description.lower()}"
            for t, n in zip(self._titles, nodes, strict=True)
        ]
        self._last_text = ""
        self._last: list[int] = list(range(len(nodes)))
        self._recent: dict[
            str, list[NodeListing]
        ] = {}  # text -> matches, for backspacing over what was typed

    def filter(self, text: str) -> list[NodeListing]:
        text = text.strip().lower()
        words = text.split()
        if not words:
            return list(self.nodes)
        cached = self._recent.get(text)
        if cached is not None:
            return list(cached)
        # Typing on: the matches of "load im" are among those of "load i".
        pool = self._last if self._last_text and text.startswith(self._last_text) else range(len(self.nodes))
        hay = self._hay
        if len(words) == 1:
            word = words[0]
            found = [i for i in pool if word in hay[i]]
        else:
            found = [i for i in pool if all(w in hay[i] for w in words)]
        self._last_text, self._last = text, found
        first = words[0]
        titles = self._titles

        def rank(i: int) -> tuple[int, int]:  # i: the node's place in alphabetical order
            title = titles[i]
            if title == text:
                return 0, i
            if title.startswith(first):
                return 1, i
            if first in title:
                return (2 if f" {first}" in title else 3), i
            return 4, i

        found.sort(key=rank)
        nodes = self.nodes
        result = [nodes[i] for i in found]
        if len(self._recent) >= RECENT_FILTERS:
            del self._recent[next(iter(self._recent))]  # the oldest
        self._recent[text] = result
        return list(result)


class _ResultsModel(QAbstractListModel):
    """The nodes matching the filter, best first; the view asks only for the rows it shows."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.nodes: list[NodeListing] = []

    def set_nodes(self, nodes: list[NodeListing]) -> None:
        self.beginResetModel()
        self.nodes = nodes
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.nodes)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = DISPLAY_ROLE) -> object:
        if not index.isValid() or index.row() >= len(self.nodes):
            return None
        node = self.nodes[index.row()]
        if role == DISPLAY_ROLE:
            where = f"  ·  {node.category}" if node.category else ""
            return node.title + _marks(node) + where
        if role == ID_ROLE:
            return node.id
        if role == TOOLTIP_ROLE:
            return node.id
        return None


def _keys(nodes: Iterable[NodeListing]) -> frozenset[tuple[str, str, str, str, bool, bool]]:
    return frozenset(map(listing_key, nodes))


def _marks(node: NodeListing) -> str:
    return " (deprecated)" if node.deprecated else " (experimental)" if node.experimental else ""


class NodePane(QWidget):
    """Binds to `CatalogModel`; filtering is local work on the catalog already in memory.

    Without a filter: the catalog by category, each category's rows made when it is first opened. With one:
    the matching nodes as a ranked list (only the rows on screen are drawn), the first one's details shown.
    """

    def __init__(
        self,
        catalog: CatalogModel | None = None,
        parent: QWidget | None = None,
        *,
        initial: NodeCatalog | None = None,
        listing: Sequence[NodeListing] | None = None,
    ) -> None:
        """`initial`: a catalog to show now; or `listing`: the nodes to list before their definitions come
        (the window's start lists the summaries its node cache keeps); `catalog`: the model to follow."""
        super().__init__(parent)
        self.setObjectName("nodePane")
        self._catalog: NodeCatalog | None = None
        self._listed: frozenset[tuple[str, str, str, str, bool, bool]] | None = None  # listing_key of each
        self._details_id: str | None = None  # the node whose details are shown (or wait for its definition)
        self._index: NodeIndex | None = None
        self._root: CategoryTree | None = None
        self._lazy: dict[str, CategoryTree] = {}  # category path -> its rows are not made yet
        self.search = QLineEdit()
        self.search.setObjectName("nodeSearch")
        self.search.setPlaceholderText("Filter nodes…")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Filter nodes")
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(120)
        self._debounce.timeout.connect(self._after_pause)
        self.search.textChanged.connect(lambda _t: self._debounce.start())

        self.tree = QTreeWidget()
        self.tree.setObjectName("nodeTree")
        self.tree.setAccessibleName("Node types by category")
        self.tree.setHeaderHidden(True)
        self.tree.setUniformRowHeights(True)
        self.tree.currentItemChanged.connect(self._on_current)
        self.tree.itemExpanded.connect(self._fill)

        self.results_model = _ResultsModel(self)
        self.results = QListView()
        self.results.setObjectName("nodeResults")
        self.results.setAccessibleName("Nodes matching the filter")
        self.results.setUniformItemSizes(True)
        # Thousands of matches (the first letter typed): lay out the first rows now, the rest in later turns.
        self.results.setLayoutMode(QListView.LayoutMode.Batched)
        self.results.setBatchSize(200)
        self.results.setModel(self.results_model)
        self.results.selectionModel().currentChanged.connect(self._on_result)

        self.lists = QStackedWidget()
        self.lists.addWidget(self.tree)
        self.lists.addWidget(self.results)

        self._details_for: object = None
        self._details_timer = QTimer(self)
        self._details_timer.setSingleShot(True)
        self._details_timer.setInterval(DETAILS_DELAY_MS)
        self._details_timer.timeout.connect(self._show_pending_details)

        self.details = QTextBrowser()
        self.details.setObjectName("nodeDetails")
        self.details.setAccessibleName("Node details")
        self.details.setOpenLinks(False)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.lists)
        split.addWidget(self.details)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.search)
        layout.addWidget(split, 1)
        self.setTabOrder(self.search, self.tree)
        self.setTabOrder(self.tree, self.results)
        self.setTabOrder(self.results, self.details)

        if initial is None and listing is not None:
            self.set_listing(listing)
        else:
            self.set_catalog(initial)
        if catalog is not None:
            self.bind(catalog)

    def bind(self, catalog: CatalogModel) -> None:
        """Follow `catalog` from now on: the one it holds is shown now, unless it holds none yet (what the
        pane lists meanwhile, from the node cache or the start's early ask, stays until it has one)."""
        catalog.catalog_changed.connect(self.set_catalog)
        if catalog.catalog is not None and catalog.catalog is not self._catalog:
            self.set_catalog(catalog.catalog)

    def set_catalog(self, catalog: object) -> None:
        """Show `catalog` (None: nothing). When it lists exactly what is listed already (the definitions of
        the summaries shown, or a server's fresh catalog equal to the cached one to the eye), the list stays
        as the user left it (open categories, the current row, the filter) and only the details follow."""
        new = catalog if isinstance(catalog, NodeCatalog) else None
        if new is not None and self._listed is not None and _keys(new.nodes()) == self._listed:
            self._catalog = new
            if self._details_id is not None:
                self._show_details(self._details_id)
            return
        self._catalog = new
        self._show_list(new.nodes() if new is not None else None)

    def set_listing(self, nodes: Sequence[NodeListing]) -> None:
        """List `nodes` before their definitions come (`set_catalog` brings them): a node picked meanwhile
        shows its name, and its details once they come."""
        self._catalog = None
        self._show_list(nodes)

    def _show_list(self, nodes: Sequence[NodeListing] | None) -> None:
        self._listed = _keys(nodes) if nodes is not None else None
        self._index = NodeIndex(nodes) if nodes is not None else None
        self._root = category_tree(nodes) if nodes is not None else None
        self._build_tree()
        self._apply_filter()

    def apply_filter_now(self) -> None:
        """Filter without waiting for the typing pause (tests, Enter key)."""
        self._debounce.stop()
        self._apply_filter()

    def _after_pause(self) -> None:
        """The user stopped typing: filter, and show the first match's details at once."""
        self._apply_filter()
        self.show_details_now()

    def show_details_now(self) -> None:
        """Show the chosen match's details without waiting for the typing pause (tests)."""
        if self._details_timer.isActive():
            self._details_timer.stop()
            self._show_pending_details()

    # -- the category tree ---------------------------------------------------------------------------
    def _build_tree(self) -> None:
        self.tree.clear()
        self._lazy.clear()
        if self._root is not None:
            self._add_children(self.tree.invisibleRootItem(), self._root)

    def _add_children(self, parent: QTreeWidgetItem, tree: CategoryTree) -> None:
        items: list[QTreeWidgetItem] = []
        for name in sorted(tree.children, key=str.lower):
            child = tree.children[name]
            item = QTreeWidgetItem([f"{name} ({child.count()})"])
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
            item.setData(0, PATH_ROLE, child.path)
            self._lazy[child.path] = child
            items.append(item)
        for node in tree.nodes:
            leaf = QTreeWidgetItem([node.title + _marks(node)])
            leaf.setData(0, ID_ROLE, node.id)
            leaf.setToolTip(0, node.id)
            items.append(leaf)
        parent.addChildren(items)

    def _fill(self, item: QTreeWidgetItem) -> None:
        """A category opened for the first time: make its rows."""
        tree = self._lazy.pop(str(item.data(0, PATH_ROLE)), None)
        if tree is not None:
            self._add_children(item, tree)

    # -- filtering -----------------------------------------------------------------------------------
    def _apply_filter(self) -> None:
        index = self._index
        text = self.search.text().strip()
        if index is None:
            self.results_model.set_nodes([])
            self.lists.setCurrentWidget(self.tree)
            self.details.setHtml("<p>Connect to a server to see its nodes.</p>")
            return
        if not text:
            self.results_model.set_nodes([])
            self.lists.setCurrentWidget(self.tree)
            self.details.setHtml(f"<p>{len(index.nodes)} node types. Pick one to see its details.</p>")
            return
        found = index.filter(text)
        self.results_model.set_nodes(found)
        if self.lists.currentWidget() is not self.results:
            self.lists.setCurrentWidget(self.results)
        if found:
            self.results.setCurrentIndex(self.results_model.index(0, 0))
        else:
            self.details.setHtml(f"<p>No node matches “{html.escape(text)}”.</p>")

    def shown_count(self) -> int:
        """How many node types the pane lists right now (filtered, or the whole catalog by category)."""
        if self.lists.currentWidget() is self.results:
            return len(self.results_model.nodes)
        return self._root.count() if self._root is not None else 0

    def leaf_ids(self) -> list[str]:
        """Node ids the pane lists, in order (for tests): the matches when filtering, else the tree's."""
        if self.lists.currentWidget() is self.results:
            return [n.id for n in self.results_model.nodes]
        out: list[str] = []

        def walk(tree: CategoryTree) -> None:
            for name in sorted(tree.children, key=str.lower):
                walk(tree.children[name])
            out.extend(n.id for n in tree.nodes)

        if self._root is not None:
            walk(self._root)
        return out

    def _show_details(self, node_id: object) -> None:
        if not node_id:
            return
        self._details_id = str(node_id)
        if self._catalog is not None:
            if node_id in self._catalog:
                self.details.setHtml(node_details_html(self._catalog[str(node_id)]))
            return
        if self._index is not None:  # listed from the node cache; the definitions are being read
            node = next((n for n in self._index.nodes if n.id == node_id), None)
            title = node.title if node is not None else str(node_id)
            self.details.setHtml(f"<h3>{html.escape(title)}</h3><p>Reading its inputs and outputs…</p>")

    def _on_current(self, current: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None) -> None:
        self._show_details(current.data(0, ID_ROLE) if current is not None else None)

    def _on_result(self, current: QModelIndex, _previous: QModelIndex) -> None:
        # While typing, the details follow once the typing pauses: laying out their HTML costs more than
        # filtering thousands of nodes.
        self._details_for = current.data(ID_ROLE) if current.isValid() else None
        self._details_timer.start()

    def _show_pending_details(self) -> None:
        self._show_details(self._details_for)
