"""A CacheKit node, described once, from which both ComfyUI node APIs are built.

A node is a method spec (cache_core/methods) plus its public face: node ID, display name,
description. Its widgets come from the method's settings (names, defaults, bounds, tooltips are
declared once, in the method's config). Node IDs and input names are a public API: saved workflows
refer to them, and saved UI workflows store widget values by position, so neither the names nor
their order may change.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from ..cache_core.ratios.ratio_file import check_file_prefix
from ..cache_core.runtime.install import install_cache, require_wrapper_support
from ..cache_core.settings import BOOL, COMBO, FLOAT, INT, STRING, Setting, config_from_values, settings_of
from .ui_report import send_report_to_ui


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

# Inputs that name a file CacheKit will write: checked as the file system will take the name, when the prompt is
# queued, so that a run never computes everything to fail when it saves.
FILE_NAME_INPUTS: dict[str, Callable[[str], None]] = {"filename_prefix": check_file_prefix}


def widget_for(name: str, spec: Setting) -> Widget:
    """The widget of one method setting."""
    if spec.kind == FLOAT:
        return FloatInput(name, spec.default, spec.min, spec.max, spec.step or 0.01, spec.tooltip)
    if spec.kind == INT:
        return IntInput(name, spec.default, int(spec.min), int(spec.max), spec.tooltip, int(spec.step or 1))
    if spec.kind == BOOL:
        return BoolInput(name, spec.default, spec.tooltip)
    if spec.kind == STRING:
        return StringInput(name, spec.default, spec.tooltip)
    if spec.kind == COMBO:
        return ComboInput(name, spec.options, spec.default, spec.tooltip)
    raise TypeError(f"unknown setting kind {spec.kind!r}")


@dataclass(frozen=True)
class NodeDef:
    """A CacheKit node: MODEL plus the method's settings in, a patched clone of MODEL out.

    notices(model, config) lists warnings for the user (logged, and shown on the node through its
    UI output "text").
    """

    node_id: str
    display_name: str
    description: str
    method: Any
    notices: Optional[Callable[[Any, Any], list[str]]] = None
    category: str = "CacheKit"
    output_tooltip: str = "A clone of the model with the cache installed; the input model is not changed."

    @property
    def widgets(self) -> tuple[Widget, ...]:
        """The node's widgets, in the method's setting order."""
        return tuple(widget_for(name, spec) for name, spec in settings_of(self.method.config_type))

    def config(self, **values: Any) -> Any:
        """The method's config from widget values; ValueError names the input and what is valid."""
        config = config_from_values(self.method.config_type, values)
        for name, check in FILE_NAME_INPUTS.items():
            if name in {w.id for w in self.widgets}:
                check(getattr(config, name))
        return config

    def check(self, **values: Any) -> None:
        """Raise ValueError when the widget values are not valid."""
        self.config(**values)

    def apply(self, model: Any, node_id: Optional[str] = None, **values: Any) -> Any:
        """A clone of `model` with the cache installed (or `model` itself if unsupported)."""
        return install_cache(model, self.method, self.config(**values), node_id=node_id,
                             node_name=self.display_name, on_report=send_report_to_ui)

    def run(self, model: Any, node_id: Optional[str], values: dict[str, Any]) -> tuple[Any, list[str]]:
        """Apply the node: the patched model and the warnings to show (already logged)."""
        require_wrapper_support()
        if model is None or not hasattr(model, "clone") or not hasattr(model, "get_model_object"):
            raise ValueError(f"{self.display_name}: the model input must be a MODEL (from a model loader), got {type(model).__name__}.")
        try:
            config = self.config(**values)
            patched = install_cache(model, self.method, config, node_id=node_id, node_name=self.display_name,
                                    on_report=send_report_to_ui)
        except ValueError as err:
            message = str(err)
            raise ValueError(message if message.startswith(self.display_name) else f"{self.display_name}: {message}") from None
        warnings = self.notices(model, config) if self.notices is not None else []
        for warning in warnings:
            log.warning("CacheKit %s", warning)
        return patched, warnings

    @property
    def file_inputs(self) -> tuple[str, ...]:
        """The widgets whose value may name a file (combos whose options are listed anew: the ratio folder)."""
        return tuple(w.id for w in self.widgets if isinstance(w, ComboInput) and callable(w.options))

    def fingerprint(self, values: dict[str, Any]) -> tuple:
        """What ComfyUI compares to decide whether the node must run again although its inputs are unchanged: the
        size and modification time of the files its widgets name (a ratio file replaced under the same name)."""
        from ..cache_core.ratios.library import file_state

        return tuple(file_state(values[name]) for name in self.file_inputs if name in values)

    def validation_message(self, values: dict[str, Any]) -> Optional[str]:
        """A user-facing message when the given widget values are invalid, else None.

        Values that arrive through links are unknown at queue time: then each value that is known is
        checked on its own, and what needs several values (a start/end window) is checked when the node
        runs.
        """
        known = {w.id: values[w.id] for w in self.widgets if w.id in values and values[w.id] is not None}
        try:
            if len(known) == len(self.widgets):
                self.check(**known)
            else:
                self._check_each(known)
        except ValueError as err:
            return f"{self.display_name}: {err}"
        return None

    def _check_each(self, known: dict[str, Any]) -> None:
        """Check every known widget value by its own setting (ValueError names the input)."""
        for name, spec in settings_of(self.method.config_type):
            if name in known:
                value = spec.check(name, known[name])
                if name in FILE_NAME_INPUTS:
                    FILE_NAME_INPUTS[name](value)
