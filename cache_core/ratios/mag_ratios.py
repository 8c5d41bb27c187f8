"""MagCache ratio tables: per calibration step, the magnitude ratio of consecutive residuals.

Tables are read by schedule progress instead of by step number: a table measured with L steps is a
piecewise-constant density of log-magnitude change over progress, and the ratio between two
evaluations is that density integrated between their progress values. With as many steps as the
table this gives exactly the table's entries; with fewer or more steps, or a partial run (denoise
< 1, KSamplerAdvanced, one Wan 2.2 expert), each step gets the change it really spans. Plain Python.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

BLOCKS, MODEL = "blocks", "model"  # what a table measures: the block stack's residual, or the model output

GRID_SNAP = 0.02  # progress within 2% of a step of a table position counts as that position


@dataclass(frozen=True)
class MagRatios:
    """A magnitude-ratio table: per calibration step, |residual_t| / |residual_{t-1}|.

    cond: the conditional branch's table; uncond: the unconditional branch's, when calibrated.
    positions: schedule progress of each entry; None means a full run of len(cond) steps with the
    simple scheduler (entry j at progress j / L), which is how the published tables were made.
    level: BLOCKS (residual of the block stack; every published table) or MODEL (the whole model
    output, for families cached at model level).
    """

    name: str
    cond: tuple[float, ...]
    uncond: tuple[float, ...] | None = None
    positions: tuple[float, ...] | None = None
    family: str | None = None
    source: str = ""
    level: str = BLOCKS

    @classmethod
    def from_lists(
        cls, name: str, cond: Sequence[float], uncond: Sequence[float] | None = None,
        positions: Sequence[float] | None = None, family: str | None = None, source: str = "", level: str = BLOCKS,
    ) -> "MagRatios":
        """Build and validate a table; ValueError names what is wrong."""
        ratios = cls(
            name=name, cond=tuple(float(v) for v in cond), uncond=tuple(float(v) for v in uncond) if uncond else None,
            positions=tuple(float(p) for p in positions) if positions is not None else None, family=family, source=source,
            level=level,
        )
        ratios.validate()
        return ratios

    def validate(self) -> None:
        """Raise ValueError unless the tables have at least two finite positive values and sane positions."""
        for label, table in (("cond", self.cond), ("uncond", self.uncond)):
            if table is None:
                continue
            if len(table) < 2:
                raise ValueError(f"MagCache ratios '{self.name}': the {label} table needs at least two steps, it has {len(table)}.")
            if not all(math.isfinite(v) and v > 0 for v in table):
                raise ValueError(f"MagCache ratios '{self.name}': the {label} table has values that are not finite positive numbers.")
        if self.uncond is not None and len(self.uncond) != len(self.cond):
            raise ValueError(f"MagCache ratios '{self.name}': cond and uncond tables differ in length.")
        if self.positions is not None:
            if len(self.positions) != len(self.cond):
                raise ValueError(f"MagCache ratios '{self.name}': {len(self.positions)} positions for {len(self.cond)} ratios.")
            if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in self.positions) or any(
                b <= a for a, b in zip(self.positions, self.positions[1:])
            ):
                raise ValueError(f"MagCache ratios '{self.name}': positions must increase within [0, 1].")

    def grid(self) -> tuple[float, ...]:
        """Schedule progress of every entry."""
        if self.positions is not None:
            return self.positions
        return tuple(j / len(self.cond) for j in range(len(self.cond)))

    def covers(self, progress: float) -> bool:
        """Whether the table measured the schedule at `progress`: from its first position to one
        step past its last (a run's last step lies there); outside it nothing is known."""
        grid = self.grid()
        last_width = grid[-1] - grid[-2]
        return grid[0] - GRID_SNAP * last_width <= progress <= grid[-1] + last_width * (1.0 + GRID_SNAP)

    def table(self, cond_index: int) -> tuple[float, ...]:
        """The table for a branch: index 0 (positive) uses cond, others uncond when present."""
        return self.uncond if cond_index != 0 and self.uncond is not None else self.cond


def cumulative_log_ratio(table: Sequence[float], grid: Sequence[float], progress: float) -> float:
    """Integral over [grid[0], progress] of the table's log-ratio density.

    Entry j (j >= 1) spreads log(table[j]) evenly over [grid[j-1], grid[j]]; outside the grid the
    density is 0 (ratio 1). Progress within 2% of a bin of a grid point counts as that point, so a
    run with the table's own schedule reads exactly the table's entries.
    """
    total = 0.0
    for j in range(1, len(table)):
        low, high = grid[j - 1], grid[j]
        width = high - low
        if progress >= high - GRID_SNAP * width:
            total += math.log(table[j])
        elif progress > low + GRID_SNAP * width:
            total += (progress - low) / width * math.log(table[j])
            break
        else:
            break
    return total


def log_ratio_between(ratios: "MagRatios", cond_index: int, start: float, end: float) -> float:
    """log(|residual at end| / |residual at start|) predicted by the table, for progress start <= end."""
    table, grid = ratios.table(cond_index), ratios.grid()
    return cumulative_log_ratio(table, grid, end) - cumulative_log_ratio(table, grid, start)
