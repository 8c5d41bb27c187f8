"""A small declarative description of a node, from which both ComfyUI node APIs are built.

Node IDs and input names are a public API: saved workflows refer to them. Never rename one.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Union


@dataclass(frozen=True)
class FloatInput:
    """A FLOAT widget."""

    id: str
    default: float
    min: float
    max: float
    step: float
    tooltip: str


@dataclass(frozen=True)
class IntInput:
    """An INT widget."""

    id: str
    default: int
    min: int
    max: int
    tooltip: str
    step: int = 1


@dataclass(frozen=True)
class BoolInput:
    """A BOOLEAN widget."""

    id: str
    default: bool
    tooltip: str


@dataclass(frozen=True)
class StringInput:
    """A single-line STRING widget."""

    id: str
    default: str
    tooltip: str


@dataclass(frozen=True)
class ComboInput:
    """A COMBO widget; `options` may be a function so the list can change without a restart."""

    id: str
    options: Union[tuple[str, ...], Callable[[], list[str]]]
    default: str
    tooltip: str

    def current_options(self) -> list[str]:
        """The options as of now."""
        return list(self.options() if callable(self.options) else self.options)


log = logging.getLogger("CacheKit")

Widget = Union[FloatInput, IntInput, BoolInput, StringInput, ComboInput]

MODEL_TOOLTIP = "The diffusion model to accelerate (from a model loader or a LoRA / patch node)."


@dataclass(frozen=True)
class NodeDef:
    """A CacheKit node: MODEL plus widgets in, a patched clone of MODEL out.

    apply(model, node_id, **widget_values) returns the patched model; it raises ValueError for
    bad values, which ComfyUI shows on the node.
    check(**widget_values) validates the widget values alone (queue-time validation).
    notices(model, **widget_values) lists warnings for the user (logged, and shown on the node
    through its UI output "text").
    """

    node_id: str
    display_name: str
    description: str
    widgets: tuple[Widget, ...]
    apply: Callable[..., Any]
    check: Callable[..., None]
    notices: Callable[..., list[str]] | None = None
    category: str = "CacheKit"
    output_tooltip: str = "A clone of the model with the cache installed; the input model is not changed."

    def run(self, model: Any, node_id: str | None, values: dict[str, Any]) -> tuple[Any, list[str]]:
        """Apply the node: the patched model and the warnings to show (already logged)."""
        patched = self.apply(model, node_id=node_id, **values)
        warnings = self.notices(model, **values) if self.notices is not None else []
        for warning in warnings:
            log.warning("CacheKit %s", warning)
        return patched, warnings

    def validation_message(self, values: dict[str, Any]) -> str | None:
        """A user-facing message when the given widget values are invalid, else None.

        Values that arrive through links are unknown at queue time and are checked when the
        node runs instead.
        """
        known = {w.id: values[w.id] for w in self.widgets if w.id in values and values[w.id] is not None}
        if len(known) != len(self.widgets):
            return None
        try:
            self.check(**known)
        except ValueError as err:
            return f"{self.display_name}: {err}"
        return None
