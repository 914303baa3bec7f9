"""`POST /prompt` validation reproducing ComfyUI 0.8.0's `execution.validate_prompt` error JSON exactly.

The fake server must answer a bad prompt byte for byte like the real one (see the captures in
`fixtures/comfyui/errors/`), so this follows the server's algorithm, quirks included: inputs are checked in
definition order, INT/FLOAT/STRING/BOOLEAN values are converted in place (the queued prompt holds the
converted values), a failing upstream node marks its dependants invalid without errors of their own, every
node with errors collects the outputs that depend on it, and an exception while following a link is reported
with the same type, message and (ComfyUI-shaped) traceback as the real server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MalformedPrompt", "PromptValidation", "validate_prompt"]

JSON = dict[str, Any]

_SRC = '  File "/srv/ComfyUI/execution.py", line {line}, in {func}\n    {code}\n'
_FRAME_PROMPT = _SRC.format(
    line=1043,
    func="validate_prompt",
    code="m = await validate_inputs(prompt_id, prompt, o, validated)\n"
    "        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
)
_FRAME_INNER = _SRC.format(
    line=832,
    func="validate_inputs",
    code="r = await validate_inputs(prompt_id, prompt, o_id, validated)\n"
    "        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
)
_FRAME_LOOKUP = _SRC.format(
    line=818,
    func="validate_inputs",
    code="o_class_type = prompt[o_id]['class_type']\n                   ~~~~~~^^^^^^",
)
_FRAME_INDEX = _SRC.format(
    line=820, func="validate_inputs", code="received_type = r[val[1]]\n                    ~^^^^^^^^"
)

#: Nodes whose inputs ComfyUI checks with a VALIDATE_INPUTS function instead of the COMBO list.
_CUSTOM_VALIDATED = {"LoadImage": "image", "LoadImageMask": "image"}


class MalformedPrompt(Exception):
    """The prompt is not a dict of node dicts: the real server answers 500 text/plain."""


class _LinkError(Exception):
    def __init__(self, error: Exception, frame: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.frame = frame


@dataclass
class PromptValidation:
    ok: bool
    error: JSON | None
    outputs: list[str]
    node_errors: dict[str, JSON] = field(default_factory=dict)


def _type_name(exc: Exception) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _types_match(received: Any, wanted: Any) -> bool:
    if received == wanted or received == "COMFY_MATCHTYPE_V3":  # a match-type output takes its input's type
        return True
    if not isinstance(received, str) or not isinstance(wanted, str):
        return False
    if "*" in (received, wanted):
        return True
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in wanted.split(",")}
    return bool(got & want)


def _input_specs(
    class_def: Mapping[str, Any], inputs: Mapping[str, Any] | None = None
) -> list[tuple[str, str, Any, JSON]]:
    """(name, section, type, extra) for required then optional inputs, in definition order.

    V3 dynamic inputs are expanded for the prompt's `inputs` as ComfyUI does: a dynamic combo is a combo of
    its option keys plus the chosen option's `<combo>.<sub>` inputs, an autogrow input its slots
    `<input>.<name>` (the first `min` required), a match-type input the types its template allows.
    """
    return _expand(class_def.get("input") or {}, inputs or {}, "")


def _expand(
    sections: Mapping[str, Any], inputs: Mapping[str, Any], prefix: str
) -> list[tuple[str, str, Any, JSON]]:
    specs: list[tuple[str, str, Any, JSON]] = []
    for section in ("required", "optional"):
        for name, spec in (sections.get(section) or {}).items():
            kind = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
            raw_extra = spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 else {}
            extra: JSON = raw_extra if isinstance(raw_extra, dict) else {}
            full = prefix + name
            if kind == "COMFY_DYNAMICCOMBO_V3":
                options = [o for o in extra.get("options") or [] if isinstance(o, dict)]
                specs.append((full, section, "COMBO", {"options": [o.get("key") for o in options]}))
                chosen = next((o for o in options if o.get("key") == inputs.get(full)), None)
                if chosen is not None:
                    specs.extend(_expand(chosen.get("inputs") or {}, inputs, full + "."))
            elif kind == "COMFY_AUTOGROW_V3":
                specs.extend(_autogrow(full, section, extra))
            elif kind == "COMFY_MATCHTYPE_V3":
                template = extra.get("template") or {}
                specs.append((full, section, template.get("allowed_types") or "*", extra))
            else:
                specs.append((full, section, kind, extra))
    return specs


def _autogrow(full: str, section: str, extra: JSON) -> list[tuple[str, str, Any, JSON]]:
    template = extra.get("template") or {}
    inner = template.get("input") or {}
    found = next(((sec, inner[sec]) for sec in ("required", "optional") if inner.get(sec)), None)
    if found is None:
        return []
    sec, entries = found
    spec = next(iter(entries.values()))
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    sub_extra = spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 else {}
    if "names" in template:
        names = [str(n) for n in template["names"]]
    else:
        names = [f"{template.get('prefix', '')}{i}" for i in range(int(template.get("max", 0)))]
    minimum = int(template.get("min", 0))
    return [
        (f"{full}.{n}", "required" if i < minimum and sec == "required" else "optional", kind, sub_extra)
        for i, n in enumerate(names)
    ]


class _Validator:
    def __init__(
        self, prompt: JSON, object_info: Mapping[str, Any], image_exists: Callable[[str], bool]
    ) -> None:
        self.prompt = prompt
        self.info = object_info
        self.image_exists = image_exists
        self.validated: dict[str, tuple[bool, list[JSON], str]] = {}

    def _linked_type(self, val: Sequence[Any]) -> Any:
        o_id = val[0]
        try:
            o_class_type = self.prompt[o_id]["class_type"]
        except Exception as ex:
            raise _LinkError(ex, _FRAME_LOOKUP) from ex
        outputs = tuple(self.info[o_class_type].get("output") or ())
        try:
            return outputs[val[1]]
        except Exception as ex:
            raise _LinkError(ex, _FRAME_INDEX) from ex

    def validate_inputs(self, unique_id: str) -> tuple[bool, list[JSON], str]:
        if unique_id in self.validated:
            return self.validated[unique_id]
        node = self.prompt[unique_id]
        inputs: JSON = node.setdefault("inputs", {})
        class_type = node["class_type"]
        class_def = self.info[class_type]
        custom = _CUSTOM_VALIDATED.get(class_type)
        errors: list[JSON] = []
        valid = True
        for x, section, input_type, extra in _input_specs(class_def, inputs):
            if x not in inputs:
                if section == "required":
                    errors.append(
                        {
                            "type": "required_input_missing",
                            "message": "Required input is missing",
                            "details": f"{x}",
                            "extra_info": {"input_name": x},
                        }
                    )
                continue
            val = inputs[x]
            info = [input_type, extra]
            if isinstance(val, list):
                if len(val) != 2:
                    errors.append(
                        {
                            "type": "bad_linked_input",
                            "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                            "details": f"{x}",
                            "extra_info": {"input_name": x, "input_config": info, "received_value": val},
                        }
                    )
                    continue
                received_type = self._linked_type(val)
                if not _types_match(received_type, input_type):
                    errors.append(
                        {
                            "type": "return_type_mismatch",
                            "message": "Return type mismatch between linked nodes",
                            "details": f"{x}, received_type({received_type}) "
                            f"mismatch input_type({input_type})",
                            "extra_info": {
                                "input_name": x,
                                "input_config": info,
                                "received_type": received_type,
                                "linked_node": val,
                            },
                        }
                    )
                    continue
                o_id = val[0]
                try:
                    r = self.validate_inputs(o_id)
                    if r[0] is False:
                        valid = False
                        continue
                except _LinkError as ex:
                    valid = False
                    self.validated[o_id] = (
                        False,
                        [
                            {
                                "type": "exception_during_inner_validation",
                                "message": "Exception when validating inner node",
                                "details": str(ex.error),
                                "extra_info": {
                                    "input_name": x,
                                    "input_config": info,
                                    "exception_message": str(ex.error),
                                    "exception_type": _type_name(ex.error),
                                    "traceback": [_FRAME_INNER, ex.frame],
                                    "linked_node": val,
                                },
                            }
                        ],
                        o_id,
                    )
                    continue
            else:
                try:
                    if isinstance(val, dict) and "__value__" in val:
                        val = val["__value__"]
                        inputs[x] = val
                    if input_type == "INT":
                        val = int(val)
                    elif input_type == "FLOAT":
                        val = float(val)
                    elif input_type == "STRING":
                        val = str(val)
                    elif input_type == "BOOLEAN":
                        val = bool(val)
                    inputs[x] = val
                except Exception as ex:
                    errors.append(
                        {
                            "type": "invalid_input_type",
                            "message": f"Failed to convert an input value to a {input_type} value",
                            "details": f"{x}, {val}, {ex}",
                            "extra_info": {
                                "input_name": x,
                                "input_config": info,
                                "received_value": val,
                                "exception_message": str(ex),
                            },
                        }
                    )
                    continue
                if x == custom:
                    continue
                error = self._check_value(x, val, input_type, extra, info)
                if error is not None:
                    errors.append(error)
        if custom is not None and custom in inputs and not isinstance(inputs[custom], list):
            image = inputs[custom]
            if not self.image_exists(str(image)):
                errors.append(
                    {
                        "type": "custom_validation_failed",
                        "message": "Custom validation failed for node",
                        "details": f"{custom} - Invalid image file: {image}",
                        "extra_info": {"input_name": custom},
                    }
                )
        ret = (False, errors, unique_id) if errors or not valid else (True, [], unique_id)
        self.validated[unique_id] = ret
        return ret

    @staticmethod
    def _check_value(x: str, val: Any, input_type: Any, extra: JSON, info: list[Any]) -> JSON | None:
        if "min" in extra and val < extra["min"]:
            return {
                "type": "value_smaller_than_min",
                "message": "Value {} smaller than min of {}".format(val, extra["min"]),
                "details": f"{x}",
                "extra_info": {"input_name": x, "input_config": info, "received_value": val},
            }
        if "max" in extra and val > extra["max"]:
            return {
                "type": "value_bigger_than_max",
                "message": "Value {} bigger than max of {}".format(val, extra["max"]),
                "details": f"{x}",
                "extra_info": {"input_name": x, "input_config": info, "received_value": val},
            }
        if isinstance(input_type, list) or input_type == "COMBO":
            options = input_type if isinstance(input_type, list) else extra.get("options", [])
            if extra.get("multiselect", False) and isinstance(val, list):
                invalid = [v for v in val if v not in options]
            else:
                invalid = [val] if val not in options else []
            if invalid:
                config: list[Any] | None = info
                if len(options) > 20:
                    list_info = f"(list of length {len(options)})"
                    config = None
                else:
                    list_info = str(options)
                return {
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "details": f"{x}: '{val}' not in {list_info}",
                    "extra_info": {"input_name": x, "input_config": config, "received_value": val},
                }
        return None


def find_cycle(prompt: Mapping[str, Any]) -> list[str]:
    """Node ids of a dependency cycle (first id repeated at the end), or [] when links form no cycle.

    Iterative, so a long chain cannot exhaust the stack; without it validation would recurse forever
    and answer HTTP 500 instead of a 400 that says what is wrong."""

    def deps(node_id: str) -> list[str]:
        node = prompt.get(node_id)
        inputs = node.get("inputs") if isinstance(node, dict) else None
        out: list[str] = []
        for value in inputs.values() if isinstance(inputs, dict) else ():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                src = str(value[0])
                if src in prompt:
                    out.append(src)
        return out

    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in prompt:
        if state.get(root):
            continue
        path: list[str] = [root]
        stack: list[list[str]] = [deps(root)]
        state[root] = 1
        while stack:
            if not stack[-1]:
                state[path.pop()] = 2
                stack.pop()
                continue
            nxt = stack[-1].pop()
            mark = state.get(nxt)
            if mark == 1:
                return [*path[path.index(nxt) :], nxt]
            if mark is None:
                state[nxt] = 1
                path.append(nxt)
                stack.append(deps(nxt))
    return []


def _invalid_prompt(message: str, node_id: str) -> PromptValidation:
    error = {
        "type": "invalid_prompt",
        "message": message,
        "details": f"Node ID '#{node_id}'",
        "extra_info": {},
    }
    return PromptValidation(False, error, [], {})


def validate_prompt(
    prompt: Any,
    object_info: Mapping[str, Any],
    *,
    image_exists: Callable[[str], bool],
    partial_execution_targets: Sequence[str] | None = None,
) -> PromptValidation:
    """Validate an API-format prompt like ComfyUI; converts widget values in `prompt` in place."""
    if not isinstance(prompt, dict) or not all(isinstance(n, dict) for n in prompt.values()):
        raise MalformedPrompt("prompt must be an object of node objects")
    outputs: list[str] = []
    for x, node in prompt.items():
        if "class_type" not in node:
            return _invalid_prompt("Cannot execute because a node is missing the class_type property.", x)
        class_type = node["class_type"]
        class_def = object_info.get(class_type) if isinstance(class_type, str) else None
        if class_def is None:
            return _invalid_prompt(f"Cannot execute because node {class_type} does not exist.", x)
        if class_def.get("output_node") is True and (
            partial_execution_targets is None or x in partial_execution_targets
        ):
            outputs.append(x)
    if not outputs:
        error = {
            "type": "prompt_no_outputs",
            "message": "Prompt has no outputs",
            "details": "",
            "extra_info": {},
        }
        return PromptValidation(False, error, [], {})

    cycle = find_cycle(prompt)
    if cycle:
        path = " -> ".join(f"#{n}" for n in cycle)
        return _invalid_prompt(f"Cannot execute because the graph has a cycle: {path}.", cycle[0])

    v = _Validator(prompt, object_info, image_exists)
    good: list[str] = []
    failed: list[tuple[str, list[JSON]]] = []
    node_errors: dict[str, JSON] = {}
    for o in outputs:
        try:
            valid, reasons, _ = v.validate_inputs(o)
        except _LinkError as ex:
            valid = False
            reasons = [
                {
                    "type": "exception_during_validation",
                    "message": "Exception when validating node",
                    "details": str(ex.error),
                    "extra_info": {
                        "exception_type": _type_name(ex.error),
                        "traceback": [_FRAME_PROMPT, ex.frame],
                    },
                }
            ]
            v.validated[o] = (False, reasons, o)
        if valid is True:
            good.append(o)
            continue
        failed.append((o, reasons))
        for node_id, result in v.validated.items():
            if result[0] is not True and result[1]:
                if node_id not in node_errors:
                    node_errors[node_id] = {
                        "errors": result[1],
                        "dependent_outputs": [],
                        "class_type": prompt[node_id]["class_type"],
                    }
                node_errors[node_id]["dependent_outputs"].append(o)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, errs in failed for e in errs)
        error = {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": details,
            "extra_info": {},
        }
        return PromptValidation(False, error, [], node_errors)
    return PromptValidation(True, None, good, node_errors)
