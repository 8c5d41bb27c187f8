"""Builds ComfyUI V3 (`comfy_api.latest`) node classes from CacheKit's node definitions."""
from __future__ import annotations

from typing import Any

from comfy_api.latest import ComfyExtension, io

from .node_def import BoolInput, ComboInput, FloatInput, IntInput, MODEL_TOOLTIP, NodeDef, StringInput, Widget


def _v3_input(widget: Widget) -> Any:
    if isinstance(widget, FloatInput):
        return io.Float.Input(widget.id, default=widget.default, min=widget.min, max=widget.max, step=widget.step, tooltip=widget.tooltip)
    if isinstance(widget, IntInput):
        return io.Int.Input(widget.id, default=widget.default, min=widget.min, max=widget.max, step=widget.step, tooltip=widget.tooltip)
    if isinstance(widget, BoolInput):
        return io.Boolean.Input(widget.id, default=widget.default, tooltip=widget.tooltip)
    if isinstance(widget, StringInput):
        return io.String.Input(widget.id, default=widget.default, tooltip=widget.tooltip)
    if isinstance(widget, ComboInput):
        return io.Combo.Input(widget.id, options=widget.current_options(), default=widget.default, tooltip=widget.tooltip)
    raise TypeError(f"unknown widget {widget!r}")


def build_v3_node(definition: NodeDef) -> type:
    """A `io.ComfyNode` subclass for `definition`."""

    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=definition.node_id,
            display_name=definition.display_name,
            category=definition.category,
            description=definition.description,
            inputs=[io.Model.Input("model", tooltip=MODEL_TOOLTIP), *(_v3_input(w) for w in definition.widgets)],
            outputs=[io.Model.Output(tooltip=definition.output_tooltip)],
            hidden=[io.Hidden.unique_id],
        )

    def execute(cls, model: Any, **values: Any) -> io.NodeOutput:
        node_id = getattr(cls.hidden, "unique_id", None) if cls.hidden is not None else None
        patched, warnings = definition.run(model, node_id, values)
        return io.NodeOutput(patched, ui={"text": warnings} if warnings else None)

    def validate_inputs(cls, **values: Any) -> bool | str:
        return definition.validation_message(values) or True

    def fingerprint_inputs(cls, **values: Any) -> Any:
        return definition.fingerprint(values)

    members = {
        "__doc__": definition.description,
        "define_schema": classmethod(define_schema),
        "execute": classmethod(execute),
        "validate_inputs": classmethod(validate_inputs),
    }
    if definition.file_inputs:  # a file replaced under the same name runs the node again
        members["fingerprint_inputs"] = classmethod(fingerprint_inputs)
    return type(definition.node_id, (io.ComfyNode,), members)


class CacheKitExtension(ComfyExtension):
    """The extension ComfyUI loads through `comfy_entrypoint`."""

    def __init__(self, definitions: tuple[NodeDef, ...]) -> None:
        self._nodes = [build_v3_node(d) for d in definitions]

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(self._nodes)
