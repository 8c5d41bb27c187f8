"""Validation of method settings: clear messages for values a user can type into a widget."""
from __future__ import annotations

import math


def check_finite_range(name: str, value: float, low: float, high: float) -> None:
    """Raise ValueError unless `value` is a finite number in [low, high]."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name} must be a number between {low} and {high}, got {value!r}.")


def check_percent_window(start_percent: float, end_percent: float) -> None:
    """Raise ValueError unless 0 <= start_percent <= end_percent <= 1."""
    check_finite_range("start_percent", start_percent, 0.0, 1.0)
    check_finite_range("end_percent", end_percent, 0.0, 1.0)
    if start_percent > end_percent:
        raise ValueError(f"start_percent ({start_percent}) must not be greater than end_percent ({end_percent}).")
