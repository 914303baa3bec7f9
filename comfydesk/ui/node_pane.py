"""The nodes pane: the connected server's node catalog by category, a filter-as-you-type search, and a
details view (display name, description, inputs with type/default/range/choices, outputs, marks)."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QLineEdit,
    QSplitter,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from comfydesk.app.catalog import CatalogModel
from comfydesk.core.nodes import CategoryTree, InputSpec, NodeCatalog, NodeDef

__all__ = ["NodePane", "node_details_html"]

ID_ROLE = Qt.ItemDataRole.UserRole
_MAX_CHOICES = 12


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


class NodePane(QWidget):
    """Binds to `CatalogModel`; filtering is local work on the catalog already in memory."""

    def __init__(self, catalog: CatalogModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("nodePane")
        self._catalog: NodeCatalog | None = None
        self.search = QLineEdit()
        self.search.setObjectName("nodeSearch")
        self.search.setPlaceholderText("Filter nodes…")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Filter nodes")
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(120)
        self._debounce.timeout.connect(self._rebuild)
        self.search.textChanged.connect(lambda _t: self._debounce.start())

        self.tree = QTreeWidget()
        self.tree.setObjectName("nodeTree")
        self.tree.setAccessibleName("Node types by category")
        self.tree.setHeaderHidden(True)
        self.tree.currentItemChanged.connect(self._on_current)

        self.details = QTextBrowser()
        self.details.setObjectName("nodeDetails")
        self.details.setAccessibleName("Node details")
        self.details.setOpenLinks(False)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.tree)
        split.addWidget(self.details)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.search)
        layout.addWidget(split, 1)
        self.setTabOrder(self.search, self.tree)
        self.setTabOrder(self.tree, self.details)

        catalog.catalog_changed.connect(self.set_catalog)
        self.set_catalog(catalog.catalog)

    def set_catalog(self, catalog: object) -> None:
        self._catalog = catalog if isinstance(catalog, NodeCatalog) else None
        self._rebuild()

    def apply_filter_now(self) -> None:
        """Filter without waiting for the typing pause (tests, Enter key)."""
        self._debounce.stop()
        self._rebuild()

    def _rebuild(self) -> None:
        self.tree.clear()
        catalog = self._catalog
        if catalog is None:
            self.details.setHtml("<p>Connect to a server to see its nodes.</p>")
            return
        text = self.search.text().strip()
        if text:
            found = catalog.search(text)
            shown = NodeCatalog(found)
        else:
            shown = catalog
        root = shown.category_tree()
        self._add_children(self.tree.invisibleRootItem(), root, expand=bool(text))
        if text and found:
            first = self._first_leaf(self.tree.invisibleRootItem())
            if first is not None:
                self.tree.setCurrentItem(first)
        elif not text:
            self.details.setHtml(f"<p>{len(catalog)} node types. Pick one to see its details.</p>")
        else:
            self.details.setHtml(f"<p>No node matches “{html.escape(text)}”.</p>")

    def _add_children(self, parent: QTreeWidgetItem, tree: CategoryTree, *, expand: bool) -> None:
        for name in sorted(tree.children, key=str.lower):
            child = tree.children[name]
            item = QTreeWidgetItem([f"{name} ({child.count()})"])
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            parent.addChild(item)
            self._add_children(item, child, expand=expand)
            item.setExpanded(expand)
        for node in tree.nodes:
            marks = " (deprecated)" if node.deprecated else " (experimental)" if node.experimental else ""
            leaf = QTreeWidgetItem([node.title + marks])
            leaf.setData(0, ID_ROLE, node.id)
            leaf.setToolTip(0, node.id)
            parent.addChild(leaf)

    def _first_leaf(self, item: QTreeWidgetItem) -> QTreeWidgetItem | None:
        for i in range(item.childCount()):
            child = item.child(i)
            if child is None:
                continue
            if child.data(0, ID_ROLE):
                return child
            found = self._first_leaf(child)
            if found is not None:
                return found
        return None

    def leaf_ids(self) -> list[str]:
        """Node ids shown in the tree, in order (for tests)."""
        out: list[str] = []

        def walk(item: QTreeWidgetItem) -> None:
            for i in range(item.childCount()):
                child = item.child(i)
                if child is None:
                    continue
                if child.data(0, ID_ROLE):
                    out.append(str(child.data(0, ID_ROLE)))
                walk(child)

        walk(self.tree.invisibleRootItem())
        return out

    def _on_current(self, current: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None) -> None:
        node_id = current.data(0, ID_ROLE) if current is not None else None
        if node_id and self._catalog is not None and node_id in self._catalog:
            self.details.setHtml(node_details_html(self._catalog[str(node_id)]))
