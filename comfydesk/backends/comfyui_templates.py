"""ComfyUI's template catalogue (`GET /templates/index.json`) as types, and what a template needs to run.

The catalogue is a list of categories (`title`, `category` = the group heading, `type` = media type), each
with `templates`: `{name, title, description, mediaType, mediaSubtype, thumbnailVariant, tags, models, size,
vram, requiresCustomNodes, openSource, date}`. `models` there are family names ("Qwen-Image-Edit"), not files:
what a template really needs is read from its UI file (`template_requirements`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FRONTEND_ONLY_NODES",
    "TemplateCategory",
    "TemplateInfo",
    "TemplateRequirements",
    "catalog_from_index",
    "template_requirements",
]

FRONTEND_ONLY_NODES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode", "PrimitiveString"})
"""Node types the frontend draws but never sends to the server: they need nothing on the server."""


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    """One template of the catalogue; `size` in bytes (0: unknown).

    `media_type` is what the template makes (image/video/audio/3d), the category's `type`: the template's own
    `mediaType` describes its thumbnail (`image` for video templates too)."""

    name: str
    title: str
    description: str = ""
    category: str = ""
    group: str = ""
    media_type: str = ""
    thumbnail_media: str = "image"  # what `-1.<thumbnail_ext>` is: image, or audio (an mp3 "thumbnail")
    thumbnail_ext: str = "webp"
    tags: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    size: int = 0
    vram: int = 0
    custom_nodes: tuple[str, ...] = ()
    open_source: bool = True

    @property
    def workflow_id(self) -> str:
        return f"template:{self.name}"

    def text(self) -> str:
        """Everything the search box looks through, lower case."""
        return " ".join((self.name, self.title, self.description, *self.tags, *self.models)).lower()


@dataclass(frozen=True, slots=True)
class TemplateCategory:
    title: str
    group: str = ""
    media_type: str = ""
    templates: tuple[TemplateInfo, ...] = ()


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value if isinstance(v, str | int | float)) if isinstance(value, list) else ()


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def catalog_from_index(doc: Any) -> list[TemplateCategory]:
    """The parsed catalogue; malformed categories and templates are skipped."""
    out: list[TemplateCategory] = []
    for group in doc if isinstance(doc, list) else ():
        if not isinstance(group, dict):
            continue
        title = str(group.get("title") or group.get("category") or "Templates")
        heading = str(group.get("category") or "")
        media = str(group.get("type") or "")
        templates = []
        for tpl in group.get("templates") or ():
            if not isinstance(tpl, dict) or not isinstance(tpl.get("name"), str):
                continue
            templates.append(
                TemplateInfo(
                    name=tpl["name"],
                    title=str(tpl.get("title") or tpl["name"]),
                    description=str(tpl.get("description") or ""),
                    category=title,
                    group=heading,
                    media_type=media or str(tpl.get("mediaType") or ""),
                    thumbnail_media=str(tpl.get("mediaType") or "image"),
                    thumbnail_ext=str(tpl.get("mediaSubtype") or "webp"),
                    tags=_strings(tpl.get("tags")),
                    models=_strings(tpl.get("models")),
                    size=_int(tpl.get("size")),
                    vram=_int(tpl.get("vram")),
                    custom_nodes=_strings(tpl.get("requiresCustomNodes")),
                    open_source=tpl.get("openSource") is not False,
                )
            )
        out.append(TemplateCategory(title=title, group=heading, media_type=media, templates=tuple(templates)))
    return out


@dataclass(frozen=True, slots=True)
class TemplateRequirements:
    """Node types and model files (`(folder, file name)`) a UI-format template uses."""

    node_types: frozenset[str]
    models: frozenset[tuple[str, str]]


def _graph_nodes(doc: dict[str, Any]) -> Iterable[dict[str, Any]]:
    yield from (n for n in doc.get("nodes") or () if isinstance(n, dict))
    definitions = doc.get("definitions")
    for sub in (definitions.get("subgraphs") or ()) if isinstance(definitions, dict) else ():
        if isinstance(sub, dict):
            yield from (n for n in sub.get("nodes") or () if isinstance(n, dict))


def template_requirements(doc: Any) -> TemplateRequirements:
    """Node types (subgraph instances and frontend-only nodes aside) and the models of `properties.models`."""
    types: set[str] = set()
    models: set[tuple[str, str]] = set()
    subgraph_ids: set[str] = set()
    if isinstance(doc, dict) and isinstance(doc.get("definitions"), dict):
        for sub in doc["definitions"].get("subgraphs") or ():
            if isinstance(sub, dict) and isinstance(sub.get("id"), str):
                subgraph_ids.add(sub["id"])
    for node in _graph_nodes(doc) if isinstance(doc, dict) else ():
        kind = node.get("type")
        if isinstance(kind, str) and kind not in subgraph_ids and kind not in FRONTEND_ONLY_NODES:
            types.add(kind)
        props = node.get("properties")
        for model in (props.get("models") or ()) if isinstance(props, dict) else ():
            if isinstance(model, dict) and isinstance(model.get("name"), str):
                models.add((str(model.get("directory") or ""), model["name"]))
    return TemplateRequirements(node_types=frozenset(types), models=frozenset(models))
