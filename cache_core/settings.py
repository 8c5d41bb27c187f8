"""Method settings, declared once: name, default, bounds, step, options and tooltip.

A method's config is a frozen dataclass whose user-facing fields are made with `setting(...)`.
The same declaration validates values (`check_settings`, called from the config's
`__post_init__`), builds configs from widget values (`config_from_values`) and gives the node its
widgets (nodes/node_def.py), so names, defaults and bounds cannot disagree.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

FLOAT, INT, BOOL, COMBO, STRING = "float", "int", "bool", "combo", "string"

Options = Union[tuple[str, ...], Callable[[], list[str]]]


@dataclass(frozen=True)
class Setting:
    """One user-facing setting of a method.

    kind: FLOAT, INT, BOOL, COMBO or STRING. min / max bound numbers (inclusive); step is the
    widget's increment; options lists a COMBO's choices (a function when the list can change, as
    for calibration files); tooltip is shown on the widget.
    """

    kind: str
    default: Any
    tooltip: str
    min: Optional[float] = None
    max: Optional[float] = None
    step: Optional[float] = None
    options: Optional[Options] = None

    def choices(self) -> list[str]:
        """A COMBO's options as of now."""
        options = self.options() if callable(self.options) else self.options
        return list(options or ())

    def check(self, name: str, value: Any) -> Any:
        """`value` normalised to this setting's type; ValueError says what would be valid."""
        if self.kind == FLOAT:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number{self._range()}, got {value!r}.")
            value = float(value)
        elif self.kind == INT:
            whole = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())
            if isinstance(value, bool) or not whole:
                raise ValueError(f"{name} must be a whole number{self._range()}, got {value!r}.")
            value = int(value)
        elif self.kind == BOOL:
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}.")
            return value
        elif self.kind == COMBO:
            choices = self.choices()
            if value not in choices:
                shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
                raise ValueError(f"{name} must be one of: {shown}; got {value!r}.")
            return value
        elif self.kind == STRING:
            if not isinstance(value, str):
                raise ValueError(f"{name} must be text, got {value!r}.")
            return value
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            what = "a finite number" if self.kind == FLOAT else "a whole number"
            raise ValueError(f"{name} must be {what}{self._range()}, got {value!r}.")
        return value

    def _range(self) -> str:
        if self.min is not None and self.max is not None:
            return f" between {_num(self.min)} and {_num(self.max)}"
        if self.min is not None:
            return f" >= {_num(self.min)}"
        if self.max is not None:
            return f" <= {_num(self.max)}"
        return ""


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def setting(kind: str, default: Any, tooltip: str, **bounds: Any) -> Any:
    """A dataclass field that is a user-facing setting (see `Setting`)."""
    return dataclasses.field(default=default, metadata={"setting": Setting(kind, default, tooltip, **bounds)})


def settings_of(config_type: type) -> list[tuple[str, Setting]]:
    """The settings of a config class, in declaration order (the node's widget order)."""
    return [(f.name, f.metadata["setting"]) for f in dataclasses.fields(config_type) if "setting" in f.metadata]


def check_settings(config: Any) -> None:
    """Validate (and normalise in place) every setting of a frozen config instance."""
    for name, spec in settings_of(type(config)):
        object.__setattr__(config, name, spec.check(name, getattr(config, name)))


def config_from_values(config_type: type, values: dict[str, Any]) -> Any:
    """A config from widget values: unknown names are an error, missing ones take their defaults."""
    names = {name for name, _ in settings_of(config_type)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown input(s) {', '.join(unknown)}; expected {', '.join(sorted(names))}.")
    return config_type(**values)


def check_window(start_name: str, start: float, end_name: str, end: float) -> None:
    """Raise ValueError unless start <= end (both already checked as percents)."""
    if start > end:
        raise ValueError(f"{start_name} ({start}) must not be greater than {end_name} ({end}).")
