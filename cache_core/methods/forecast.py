"""Forecasting cached tensor trees over the schedule: TaylorSeer's expansion and a FoCa-style
predictor-corrector, kept per batch of branches.

`TreeForecast` keeps, per batch layout (the branches of a forward and their row counts) and per
name, one forecaster per tensor leaf; a forecast has the tree's structure. Forecasters see
schedule positions (runtime step clock: step i of the run is position i; multi-evaluation samplers
add fractional positions), so uneven spacing is handled exactly.

- `TaylorSeries` (taylor_series.py): Newton / diffusers expansion from the computed values.
- `FoCaSeries`: FoCa's idea (arXiv 2508.16211, feature caching as an ODE): the forecast starts
  from the last computed value and advances with the trapezoidal (Heun) average of two slopes, the
  slope between the last two computed values and the slope between the last two values seen
  (computed or forecast), so consecutive forecasts follow each other smoothly while staying
  anchored to computed values. Beyond a horizon of 3 steps the advance is damped toward the anchor.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Optional

import torch

from ..runtime import trees

_LEAF = torch.empty(0)  # marks a leaf in a kept tree's structure
HORIZON = 3.0


class FoCaSeries:
    """FoCa-style forecast of one tensor over schedule positions (see the module docstring)."""

    def __init__(self) -> None:
        self.anchor: Optional[tuple[torch.Tensor, float]] = None  # last computed (value, position)
        self.before_anchor: Optional[tuple[torch.Tensor, float]] = None  # the computed one before it
        self.last: Optional[tuple[torch.Tensor, float]] = None  # last value seen (computed or forecast)
        self.before_last: Optional[tuple[torch.Tensor, float]] = None

    @property
    def shape(self) -> Optional[torch.Size]:
        return self.anchor[0].shape if self.anchor is not None else None

    def update(self, value: torch.Tensor, position: float, copy: bool = True) -> None:
        """A computed value at `position`."""
        value = value.detach().clone() if copy else value.detach()
        if self.anchor is not None and self.anchor[0].shape != value.shape:
            self.__init__()
        if self.anchor is not None and abs(position - self.anchor[1]) < 1e-6:
            self.anchor = (value, position)  # heun's correction at the same position refreshes the value
        else:
            self.before_anchor, self.anchor = self.anchor, (value, position)
        self.before_last, self.last = (self.last if self.last is not None and self.last[1] < position else None), (value, position)

    def predict(self, position: float) -> torch.Tensor:
        """The forecast at `position` (it then counts as the last value seen)."""
        value, at = self.anchor
        if self.before_anchor is None:
            return value.clone()
        slope_anchor = (value - self.before_anchor[0]) / (at - self.before_anchor[1])
        local = self.before_last
        slope_local = slope_anchor if local is None or self.last[1] == local[1] else (self.last[0] - local[0]) / (self.last[1] - local[1])
        elapsed = position - at
        horizon = min(elapsed, HORIZON)
        forecast = value + (0.5 * horizon) * (slope_anchor + slope_local)
        if elapsed > HORIZON:
            weight = HORIZON / elapsed
            forecast = value + weight * (forecast - value)
        if self.last is None or position > self.last[1]:
            self.before_last, self.last = self.last, (forecast, position)
        return forecast

    def nbytes(self) -> int:
        kept = {id(v[0]): v[0] for v in (self.anchor, self.before_anchor, self.last, self.before_last) if v is not None}
        return sum(t.numel() * t.element_size() for t in kept.values())


class TreeForecast:
    """Forecasters of named tensor trees, per batch layout (one forecaster per leaf)."""

    def __init__(self, make: Callable[[torch.Tensor], Any]) -> None:
        self.make = make
        self.kept: dict[Hashable, dict[str, tuple[Any, list]]] = {}

    def learn(self, layout: Hashable, name: str, value: Any, position: float, copy: bool) -> None:
        """Add a computed tree at `position`."""
        entries = self.kept.setdefault(layout, {})
        leaves = trees.leaves(value)
        kept = entries.get(name)
        if kept is None or len(kept[1]) != len(leaves):
            kept = entries[name] = (trees.tree_map(lambda t: _LEAF, value), [self.make(leaf) for leaf in leaves])
        for forecaster, leaf in zip(kept[1], leaves):
            forecaster.update(leaf, position, copy=copy)

    def predict(self, layout: Hashable, name: str, position: float) -> Any:
        """The tree forecast at `position`, or None without history for this layout."""
        kept = self.kept.get(layout, {}).get(name)
        if kept is None or any(f.shape is None for f in kept[1]):
            return None
        forecasts = iter([f.predict(position) for f in kept[1]])
        return trees.tree_map(lambda _: next(forecasts), kept[0])

    def nbytes(self) -> int:
        return sum(f.nbytes() for entries in self.kept.values() for _, fs in entries.values() for f in fs)

    def clear(self) -> None:
        self.kept.clear()
