"""What a workflow needs that the server lacks: custom nodes, models, option values, input files.

Pure analysis of a workflow against the server's node catalog. The UI-format file (when there is one) says
which node pack each node comes from (`properties.cnr_id` / `aux_id`) and where each model it uses can be
downloaded (`properties.models`: name, url, directory, sometimes a size). The catalog says what the server
has: its node types, and its model files as the options of the loader inputs (`ckpt_name`, `vae_name`, ...).

- `workflow_needs(workflow, catalog, ui_doc)` is the static part: missing node types grouped by pack, and the
  model download sources of the file; `WorkflowNeeds.check(values)` gives the `MissingPieces` for the
  values the form holds now (a model picked from the server's list is no longer missing).
- `open_workflow(data, catalog)` loads a workflow even when node types are missing (the editor's lenient
  conversion), and `build_partial_form` builds the form of the nodes the server knows, plus read-only
  fields for the nodes it does not know.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from comfydesk.core.errors import WorkflowError
from comfydesk.core.graph import ApiGraph, is_link
from comfydesk.core.nodes import InputSpec, NodeCatalog
from comfydesk.core.templates import FieldKind, FormField, FormGroup, FormSpec, build_form, humanize
from comfydesk.core.workflow import (
    PLACEHOLDER_RE,
    Workflow,
    is_image_bytes,
    load_parsed_workflow,
    load_workflow,
    parse_workflow_json,
)

__all__ = [
    "MODEL_INPUT_FOLDERS",
    "MissingModel",
    "MissingNodes",
    "MissingPieces",
    "MissingValue",
    "ModelSource",
    "WorkflowNeeds",
    "build_partial_form",
    "form_inputs",
    "format_size",
    "missing_node_reason",
    "open_workflow",
    "open_workflow_file",
    "ui_document",
    "unavailable_fields",
    "workflow_needs",
]

#: Loader inputs and the models folder whose files they list (ComfyUI's folder_paths names).
MODEL_INPUT_FOLDERS: Mapping[str, str] = {
    "ckpt_name": "checkpoints",
    "vae_name": "vae",
    "lora_name": "loras",
    "unet_name": "diffusion_models",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "clip_name3": "text_encoders",
    "clip_name4": "text_encoders",
    "control_net_name": "controlnet",
    "style_model_name": "style_models",
    "gligen_name": "gligen",
    "hypernetwork_name": "hypernetworks",
    "upscale_model": "upscale_models",
    "model_name": "upscale_models",
    "audio_encoder_name": "audio_encoders",
}
#: Nodes whose input of a common name lists another folder.
_NODE_FOLDERS: Mapping[tuple[str, str], str] = {
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("LatentUpscaleModelLoader", "model_name"): "latent_upscale_models",
    ("PhotoMakerLoader", "photomaker_model_name"): "photomaker",
}
_MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx", ".pkl")
_FRONTEND_ONLY = frozenset({"Note", "MarkdownNote", "PrimitiveNode", "Reroute"})
_MUTED, _BYPASSED = 2, 4
UNKNOWN_PACK = ""


@dataclass(frozen=True, slots=True)
class ModelSource:
    """A model as the workflow file describes it (`properties.models`)."""

    name: str
    folder: str = ""
    url: str = ""
    size: int | None = None


@dataclass(frozen=True, slots=True)
class MissingNodes:
    """Node types of one node pack that the server does not have."""

    pack: str  # the pack's registry id (cnr_id) or repository (aux_id); "" when the file does not say
    node_types: tuple[str, ...]
    node_ids: tuple[str, ...]  # the API graph's ids of those nodes

    @property
    def pack_label(self) -> str:
        return self.pack or "an unknown node pack"


@dataclass(frozen=True, slots=True)
class MissingModel:
    """A model file a field uses that the server does not have."""

    name: str
    folder: str
    url: str = ""
    size: int | None = None
    #: (node id, input name) of each input set to it; empty for a model of a missing node.
    inputs: tuple[tuple[str, str], ...] = ()
    #: The server's files for that input, to pick instead.
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MissingValue:
    """A choice (not a model) or an input file the server does not have."""

    node_id: str
    input_name: str
    value: str
    kind: str  # "file" (an image/video/audio to load) | "choice"
    node_title: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MissingPieces:
    """Everything the workflow, with the form's values, needs that the server lacks."""

    nodes: tuple[MissingNodes, ...] = ()
    models: tuple[MissingModel, ...] = ()
    choices: tuple[MissingValue, ...] = ()
    files: tuple[MissingValue, ...] = ()  # a warning: the user can pick another file or upload one

    @property
    def empty(self) -> bool:
        return not (self.nodes or self.models or self.choices or self.files)

    @property
    def blocking(self) -> bool:
        """The server cannot run the workflow as it is (input files aside: those can be uploaded)."""
        return bool(self.nodes or self.models or self.choices)

    @property
    def node_type_count(self) -> int:
        return sum(len(n.node_types) for n in self.nodes)

    def summary(self) -> str:
        """ "2 custom nodes and 1 model are missing"; "" when nothing blocks."""
        parts = []
        for count, one, many in (
            (self.node_type_count, "custom node", "custom nodes"),
            (len(self.models), "model", "models"),
            (len(self.choices), "setting", "settings"),
        ):
            if count:
                parts.append(f"{count} {one if count == 1 else many}")
        if not parts:
            return ""
        text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        total = self.node_type_count + len(self.models) + len(self.choices)
        return f"{text} {'is' if total == 1 else 'are'} missing"

    def field_inputs(self) -> dict[tuple[str, str], str]:
        """(node id, input) -> a short note for each input set to something the server lacks."""
        out: dict[tuple[str, str], str] = {}
        for model in self.models:
            for spot in model.inputs:
                out[spot] = "This model is not on this server. Pick one of its models from the list."
        for value in self.choices:
            out[(value.node_id, value.input_name)] = "Not on this server. Pick one of the listed options."
        for value in self.files:
            out[(value.node_id, value.input_name)] = (
                "The server doesn't have this file. Pick another, or Browse… to send yours."
            )
        return out


def format_size(size: int | None) -> str:
    """Bytes as "2.1 GB" (decimal units, as download pages give them); "" when unknown."""
    if size is None or size < 0:
        return ""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return ""  # pragma: no cover


# ------------------------------------------------------------------------------------------- reading


def ui_document(data: bytes | str | Mapping[str, Any] | list[Any]) -> dict[str, Any] | None:
    """The UI-format (editor) document in `data` (JSON, PNG/WebP metadata), else None; never raises."""
    from comfydesk.core.convert import is_ui_workflow

    doc: Any = data
    try:
        if isinstance(data, bytes | bytearray):
            raw = bytes(data)
            if raw.startswith(b"\x89PNG") or raw[:4] == b"RIFF":
                from comfydesk.core.pngmeta import read_embedded_workflow

                doc = read_embedded_workflow(raw).get("workflow")
            else:
                doc = json.loads(raw.decode("utf-8-sig"))
        elif isinstance(data, str):
            doc = json.loads(data.lstrip("\ufeff"))
    except (ValueError, WorkflowError):
        return None
    if isinstance(doc, Mapping) and isinstance(doc.get("data"), Mapping):  # a v1 envelope
        inner = doc["data"].get("workflow")
        doc = inner if isinstance(inner, Mapping) else doc
    return dict(doc) if isinstance(doc, Mapping) and is_ui_workflow(doc) else None


def open_workflow(
    data: bytes | str | Mapping[str, Any] | list[Any],
    *,
    catalog: NodeCatalog,
    name: str | None = None,
    source: str | None = None,
) -> Workflow:
    """`load_workflow`, but a UI workflow with node types the catalog lacks still loads: those nodes come
    out as the editor writes them (no `class_type`), for the form to show them read-only."""
    # Lenient at once: without unknown node types a lenient conversion is the strict one.
    return load_workflow(data, name=name, catalog=catalog, source=source, lenient=True)


def _props(node: Mapping[str, Any]) -> Mapping[str, Any]:
    props = node.get("properties")
    return props if isinstance(props, Mapping) else {}


def _pack_of(node: Mapping[str, Any]) -> str:
    props = _props(node)
    for key in ("cnr_id", "aux_id"):
        value = props.get(key)
        if isinstance(value, str) and value and value != "comfy-core":
            return value
    return UNKNOWN_PACK


def _ui_nodes(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Every UI node by the id the API graph gives it ("83:5" inside subgraph instance 83), the way the
    converter expands subgraphs; nodes inside muted or bypassed instances are left out."""
    subgraphs: dict[str, Mapping[str, Any]] = {}
    definitions = doc.get("definitions")
    for sub in definitions.get("subgraphs") or () if isinstance(definitions, Mapping) else ():
        if isinstance(sub, Mapping) and isinstance(sub.get("id"), str):
            subgraphs[sub["id"]] = sub
    out: dict[str, Mapping[str, Any]] = {}

    def walk(graph: Mapping[str, Any], prefix: str, stack: tuple[str, ...]) -> None:
        for node in graph.get("nodes") or ():
            if not isinstance(node, Mapping) or "id" not in node:
                continue
            exec_id = f"{prefix}{node['id']}"
            kind = node.get("type")
            if node.get("mode") in (_MUTED, _BYPASSED):
                continue
            if isinstance(kind, str) and kind in subgraphs:
                if kind not in stack:
                    walk(subgraphs[kind], f"{exec_id}:", (*stack, kind))
                continue
            out[exec_id] = node

    walk(doc, "", ())
    return out


def _model_sources(doc: Mapping[str, Any] | None) -> dict[str, ModelSource]:
    """Every `properties.models` entry of the file by file name (the first one with a URL wins)."""
    out: dict[str, ModelSource] = {}
    if doc is None:
        return out
    nodes = list(_ui_nodes(doc).values())
    definitions = doc.get("definitions")
    for sub in definitions.get("subgraphs") or () if isinstance(definitions, Mapping) else ():
        if isinstance(sub, Mapping):
            nodes.extend(n for n in sub.get("nodes") or () if isinstance(n, Mapping))
    for node in nodes:
        models = _props(node).get("models")
        for entry in models if isinstance(models, list) else ():
            if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or not entry["name"]:
                continue
            size = entry.get("size")
            source = ModelSource(
                name=entry["name"],
                folder=str(entry.get("directory") or ""),
                url=str(entry.get("url") or ""),
                size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
            )
            known = out.get(source.name)
            if known is None or (not known.url and source.url):
                out[source.name] = source
    return out


# ------------------------------------------------------------------------------------------- analysis


def _is_model_input(class_type: str, spec: InputSpec, value: str) -> bool:
    if spec.name in MODEL_INPUT_FOLDERS or (class_type, spec.name) in _NODE_FOLDERS:
        return True
    return value.lower().endswith(_MODEL_SUFFIXES)


def _folder_of(class_type: str, input_name: str) -> str:
    return _NODE_FOLDERS.get((class_type, input_name)) or MODEL_INPUT_FOLDERS.get(input_name, "")


def _checkable(spec: InputSpec) -> bool:
    """A combo whose options are all the server has (an empty list too: a loader of an empty folder)."""
    return spec.choices is not None and not spec.remote and not spec.multiselect


@dataclass(eq=False)
class WorkflowNeeds:
    """The part of the analysis that does not depend on the form: see `workflow_needs`."""

    graph: ApiGraph
    catalog: NodeCatalog
    nodes: tuple[MissingNodes, ...] = ()
    sources: Mapping[str, ModelSource] = field(default_factory=dict)
    #: Models listed by nodes the server lacks (needed once their pack is installed).
    node_models: tuple[ModelSource, ...] = ()

    def missing_node_ids(self) -> dict[str, MissingNodes]:
        return {node_id: group for group in self.nodes for node_id in group.node_ids}

    def check(self, values: Mapping[tuple[str, str], Any] | None = None) -> MissingPieces:
        """What is missing with `values` ((node id, input name) -> value) over the workflow's own."""
        values = values or {}
        installed = {c for ndef in self.catalog.values() for s in ndef.inputs for c in s.choices or ()}
        models: dict[tuple[str, str], MissingModel] = {}
        choices: list[MissingValue] = []
        files: list[MissingValue] = []
        for node in self.graph.values():
            ndef = self.catalog.get(node.class_type)
            if ndef is None:
                continue
            for spec in ndef.inputs:
                if not _checkable(spec) or spec.name not in node.inputs:
                    continue
                value = values.get((node.id, spec.name), node.inputs[spec.name])
                if not isinstance(value, str) or is_link(value) or PLACEHOLDER_RE.search(value):
                    continue
                assert spec.choices is not None
                if value in spec.choices:
                    continue
                options = tuple(str(c) for c in spec.choices)
                title = node.title or ndef.title
                if spec.upload is not None:
                    files.append(MissingValue(node.id, spec.name, value, "file", title, options))
                elif _is_model_input(node.class_type, spec, value) or value in self.sources:
                    source = self.sources.get(value)
                    folder = (source.folder if source else "") or _folder_of(node.class_type, spec.name)
                    known = models.get((value, folder))
                    spot = (node.id, spec.name)
                    if known is None:
                        models[(value, folder)] = MissingModel(
                            name=value,
                            folder=folder,
                            url=source.url if source else "",
                            size=source.size if source else None,
                            inputs=(spot,),
                            choices=options,
                        )
                    else:
                        models[(value, folder)] = replace(known, inputs=(*known.inputs, spot))
                elif options:  # an empty list of something else proves nothing
                    choices.append(MissingValue(node.id, spec.name, value, "choice", title, options))
        for source in self.node_models:
            if source.name not in installed and not any(m.name == source.name for m in models.values()):
                models[(source.name, source.folder)] = MissingModel(
                    source.name, source.folder, source.url, source.size
                )
        return MissingPieces(self.nodes, tuple(models.values()), tuple(choices), tuple(files))


def workflow_needs(
    workflow: Workflow, catalog: NodeCatalog, ui_doc: Mapping[str, Any] | None = None
) -> WorkflowNeeds:
    """Node types of `workflow` the catalog lacks (by pack, from `ui_doc` when given) and the download
    sources of its models. A lenient conversion writes missing nodes without `class_type`: `ui_doc` names
    them; without it they show as the type the graph gives."""
    ui_nodes = _ui_nodes(ui_doc) if ui_doc is not None else {}
    groups: dict[str, tuple[list[str], list[str]]] = {}
    node_models: list[ModelSource] = []
    sources = _model_sources(ui_doc)
    for node in workflow.graph.values():
        if node.class_type and node.class_type in catalog:
            continue
        ui = ui_nodes.get(node.id)
        kind = node.class_type
        if not kind and ui is not None:
            ui_type = ui.get("type")
            name = _props(ui).get("Node name for S&R")
            kind = ui_type if isinstance(ui_type, str) and ui_type else name if isinstance(name, str) else ""
        kind = kind or "(unnamed node)"
        pack = _pack_of(ui) if ui is not None else UNKNOWN_PACK
        types, ids = groups.setdefault(pack, ([], []))
        if kind not in types:
            types.append(kind)
        ids.append(node.id)
        if ui is not None:
            node_models.extend(
                sources[m["name"]]
                for m in _props(ui).get("models") or ()
                if isinstance(m, Mapping) and m.get("name") in sources
            )
    nodes = tuple(
        MissingNodes(pack, tuple(types), tuple(ids))
        for pack, (types, ids) in sorted(groups.items(), key=lambda kv: (kv[0] == UNKNOWN_PACK, kv[0]))
    )
    return WorkflowNeeds(workflow.graph.copy(), catalog, nodes, sources, tuple(node_models))


# ------------------------------------------------------------------------------------------- the form


def _guess_kind(value: Any) -> FieldKind:
    if isinstance(value, bool):
        return FieldKind.BOOLEAN
    if isinstance(value, int):
        return FieldKind.INT
    if isinstance(value, float):
        return FieldKind.FLOAT
    if isinstance(value, str) and "\n" in value:
        return FieldKind.TEXT
    return FieldKind.STRING


def _missing_fields(
    node_id: str, inputs: Mapping[str, Any], ui: Mapping[str, Any] | None, reason: str
) -> list[FormField]:
    """Read-only fields for a node the server lacks: its named values (API format), else the editor's
    widget values in order."""
    named = {k: v for k, v in inputs.items() if k != "UNKNOWN" and not is_link(v) and not isinstance(v, list)}
    if not named and ui is not None:
        widgets = ui.get("widgets_values")
        if isinstance(widgets, list):
            named = {
                f"value {i + 1}": v
                for i, v in enumerate(widgets)
                if isinstance(v, str | int | float | bool) and v is not None
            }
    fields = []
    for name, value in named.items():
        kind = _guess_kind(value)
        if kind is FieldKind.STRING and not isinstance(value, str):
            continue
        fields.append(
            FormField(
                key=f"{node_id}.{name}",
                label=humanize(name),
                kind=kind,
                node_id=node_id,
                input_name=name,
                default=copy.deepcopy(value),
                value=copy.deepcopy(value),
                multiline=kind is FieldKind.TEXT,
                tooltip=reason,
            )
        )
    return fields


def missing_node_reason(group: MissingNodes) -> str:
    if group.pack:
        return f"Needs the custom node pack “{group.pack}”, which this server doesn't have."
    return "Needs a custom node this server doesn't have."


def build_partial_form(
    workflow: Workflow, catalog: NodeCatalog, needs: WorkflowNeeds, ui_doc: Mapping[str, Any] | None = None
) -> FormSpec:
    """The form of `workflow` when some of its node types are missing: the known nodes' fields as
    `build_form` makes them, and read-only fields (`FormSpec.groups`, in graph order) for the others;
    `unavailable_fields` lists those. With nothing missing it is `build_form` itself."""
    missing = needs.missing_node_ids()
    if not missing:
        return build_form(workflow, catalog)
    graph = workflow.graph
    known = ApiGraph({k: n for k, n in graph.items() if k not in missing})
    known_wf = Workflow(
        name=workflow.name,
        graph=known,
        description=workflow.description,
        source=workflow.source,
        format=workflow.format,
        seed_controls=workflow.seed_controls,
    )
    base = build_form(known_wf, catalog)
    by_node = {g.node_id: g for g in base.groups}
    ui_nodes = _ui_nodes(ui_doc) if ui_doc is not None else {}
    groups: list[FormGroup] = []
    for node in graph.values():
        if node.id in by_node:
            groups.append(by_node[node.id])
        elif node.id in missing:
            group = missing[node.id]
            ui = ui_nodes.get(node.id)
            kind = node.class_type or next(iter(group.node_types), "")
            if ui is not None and isinstance(ui.get("type"), str):
                kind = ui["type"]
            fields = _missing_fields(node.id, node.inputs, ui, missing_node_reason(group))
            if fields:
                title = node.title or (ui.get("title") if ui is not None else None) or kind
                groups.append(FormGroup(node.id, str(title), kind, tuple(fields)))
    return FormSpec(
        workflow_name=workflow.name,
        placeholders=base.placeholders,
        groups=tuple(groups),
        graph=graph.copy(),
        catalog=catalog,
    )


def unavailable_fields(spec: FormSpec, needs: WorkflowNeeds) -> dict[str, str]:
    """Field key -> why it cannot be set, for every field of a node the server lacks."""
    missing = needs.missing_node_ids()
    return {
        f.key: missing_node_reason(missing[f.node_id])
        for g in spec.groups
        for f in g.fields
        if f.node_id is not None and f.node_id in missing
    }


def form_inputs(spec: FormSpec, values: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    """The form's values by the (node id, input name) they set."""
    out: dict[tuple[str, str], Any] = {}
    for f in spec.fields():
        if f.key not in values:
            continue
        if f.node_id is not None and f.input_name is not None:
            out[(f.node_id, f.input_name)] = values[f.key]
        for node_id, input_name in f.targets:
            original = spec.graph[node_id].inputs.get(input_name)
            if isinstance(original, str) and PLACEHOLDER_RE.fullmatch(original):
                out[(node_id, input_name)] = values[f.key]
    return out


def open_workflow_file(path: Path, catalog: NodeCatalog) -> tuple[Workflow, dict[str, Any] | None]:
    """`open_workflow` on a file (blocking), with the UI document inside it when there is one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WorkflowError(f"cannot read the file: {exc.strerror or exc}", source=str(path)) from exc
    source = str(path)
    if is_image_bytes(data):
        return open_workflow(data, catalog=catalog, source=source), ui_document(data)
    doc = parse_workflow_json(data, source)  # once, for the workflow and for its UI document
    return load_parsed_workflow(doc, catalog=catalog, source=source, lenient=True), ui_document(doc)
