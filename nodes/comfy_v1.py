"""Builds legacy V1 node classes from CacheKit's node definitions, for ComfyUI without `comfy_api.latest`.

Such a ComfyUI predates the extension points CacheKit uses, so these nodes load (saved workflows
keep their nodes and values) and then report clearly that ComfyUI must be updated.
"""
from __future__ import annotations

from typing import Any

from .node_def import BoolInput, ComboInput, FloatInput, IntInput, MODEL_TOOLTIP, NodeDef, StringInput, Widget


def _v1_input(widget: Widget) -> tuple:
    if isinstance(widget, FloatInput):
        return ("FLOAT", {"default": widget.default, "min": widget.min, "max": widget.max, "step": widget.step, "tooltip": widget.tooltip})
    if isinstance(widget, IntInput):
        return ("INT", {"default": widget.default, "min": widget.min, "max": widget.max, "step": widget.step, "tooltip": widget.tooltip})
    if isinstance(widget, BoolInput):
        return ("BOOLEAN", {"default": widget.default, "tooltip": widget.tooltip})
    if isinstance(widget, StringInput):
        return ("STRING", {"default": widget.default, "tooltip": widget.tooltip})
    if isinstance(widget, ComboInput):
        return (widget.current_options(), {"default": widget.default, "tooltip": widget.tooltip})
    raise TypeError(f"unknown widget {widget!r}")


def build_v1_node(definition: NodeDef) -> type:
    """A V1 node class for `definition`."""

    def input_types(cls) -> dict:
        required = {"model": ("MODEL", {"tooltip": MODEL_TOOLTIP})}
        required.update({w.id: _v1_input(w) for w in definition.widgets})
        return {"required": required, "hidden": {"unique_id": "UNIQUE_ID"}}

    def run(self, model: Any, unique_id: str | None = None, **values: Any) -> dict:
        patched, warnings = definition.run(model, unique_id, values)
        return {"result": (patched,), "ui": {"text": warnings}} if warnings else {"result": (patched,)}

    def validate(cls, **values: Any) -> bool | str:
        return definition.validation_message(values) or True

    def is_changed(cls, **values: Any) -> Any:
        return definition.fingerprint(values)

    members = {
        "__doc__": definition.description,
        "INPUT_TYPES": classmethod(input_types),
        "RETURN_TYPES": ("MODEL",),
        "FUNCTION": "run",
        "CATEGORY": definition.category,
        "DESCRIPTION": definition.description,
        "run": run,
        "VALIDATE_INPUTS": classmethod(validate),
    }
    if definition.file_inputs:  # a file replaced under the same name runs the node again
        members["IS_CHANGED"] = classmethod(is_changed)
    return type(definition.node_id, (), members)
