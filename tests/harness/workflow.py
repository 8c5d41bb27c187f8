"""Saved workflows: the frontend's UI format turned into the API format that /prompt takes."""
from __future__ import annotations

from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _is_widget(spec: list) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _has_control_value(name: str, spec: list) -> bool:
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return spec[0] == "INT" and (options.get("control_after_generate") or name in ("seed", "noise_seed"))


def ui_to_api(workflow: dict, object_info: dict) -> dict[str, dict[str, Any]]:
    """Convert a UI-format workflow (nodes, links, widgets_values) to an API prompt.

    Widget values are matched to the node's inputs in their declared order, skipping the
    frontend-only "control after generate" value that follows a seed. Muted or bypassed nodes
    are left out.
    """
    links = {link[0]: link for link in workflow.get("links", [])}
    prompt: dict[str, dict[str, Any]] = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) != 0:
            continue
        info = object_info[node["type"]]
        declared = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        order = info.get("input_order", {})
        names = list(order.get("required", [])) + list(order.get("optional", [])) or list(declared)
        inputs: dict[str, Any] = {}
        for entry in node.get("inputs", []):
            if entry.get("link") is not None:
                link = links[entry["link"]]
                inputs[entry["name"]] = [str(link[1]), link[2]]
        values = list(node.get("widgets_values") or [])
        position = 0
        for name in names:
            spec = declared[name]
            if not _is_widget(spec) or position >= len(values):
                continue
            if name not in inputs:
                inputs[name] = values[position]
            position += 2 if _has_control_value(name, spec) else 1
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def drop_unreachable(prompt: dict[str, dict[str, Any]], outputs: list[str]) -> dict[str, dict[str, Any]]:
    """Keep only the nodes that the given output nodes depend on."""
    keep: set[str] = set()
    stack = list(outputs)
    while stack:
        node_id = stack.pop()
        if node_id in keep:
            continue
        keep.add(node_id)
        stack.extend(value[0] for value in prompt[node_id]["inputs"].values() if isinstance(value, list) and len(value) == 2)
    return {k: v for k, v in prompt.items() if k in keep}


def nodes_of(prompt: dict[str, dict[str, Any]], class_type: str) -> list[str]:
    """Ids of the nodes of one class."""
    return [k for k, v in prompt.items() if v["class_type"] == class_type]


def declared_inputs(node_class: Any) -> dict[str, tuple]:
    """A node's declared inputs, required then optional, as ComfyUI reports them (INPUT_TYPES, also for V3 nodes)."""
    declared = node_class.INPUT_TYPES()
    return {**declared.get("required", {}), **declared.get("optional", {})}


def node_inputs(node_class: Any, **values: Any) -> dict[str, Any]:
    """Keyword inputs for a node call built from its declared inputs: the given values, and for every other input its
    declared default (a combo's first option when it declares none). A required input without a default must be given;
    an unknown name raises, so a test notices when ComfyUI renames an input."""
    declared = declared_inputs(node_class)
    unknown = set(values) - set(declared)
    if unknown:
        raise TypeError(f"{node_class.__name__} declares no input {sorted(unknown)}; it has {list(declared)}")
    required = set(node_class.INPUT_TYPES().get("required", {}))
    inputs: dict[str, Any] = {}
    for name, spec in declared.items():
        options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        if name in values:
            inputs[name] = values[name]
        elif "default" in options:
            inputs[name] = options["default"]
        elif isinstance(spec[0], list) and spec[0]:
            inputs[name] = spec[0][0]
        elif spec[0] == "COMBO" and options.get("options"):
            inputs[name] = options["options"][0]
        elif name in required:
            raise TypeError(f"{node_class.__name__}: required input {name!r} has no default; pass it")
    return inputs


def run_node(node_class: Any, **values: Any) -> tuple:
    """Run a ComfyUI node in-process (V1 or V3) with inputs from its schema (see node_inputs); its outputs as a tuple."""
    result = getattr(node_class(), node_class.FUNCTION)(**node_inputs(node_class, **values))
    result = getattr(result, "result", result)  # V3: NodeOutput
    return tuple(result)
