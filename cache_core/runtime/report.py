"""The run report: what a cache did during one sampling run, for the log and the UI."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COMPUTED = "computed"
REUSED = "reused"
PARTIAL = "partial"


@dataclass
class RunReport:
    """Counts of one sampling run of one cache.

    Units are what the method skips (transformer blocks for block caches). A step is "computed"
    when every unit of every evaluation in it ran, "reused" when none of its skippable units ran,
    and "partial" otherwise.
    """

    method: str
    family: str
    total_steps: int
    unit: str = "blocks"
    forwards: int = 0
    units_total: int = 0
    units_computed: int = 0
    peak_cache_bytes: int = 0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    _step_forwards: dict[int, list[int]] = field(default_factory=dict, repr=False)

    def record_forward(self, step: int, units_total: int, units_computed: int) -> None:
        """Add one diffusion-model forward of step `step`."""
        self.forwards += 1
        self.units_total += units_total
        self.units_computed += units_computed
        counts = self._step_forwards.setdefault(step, [0, 0])
        counts[0] += 1
        counts[1] += int(units_computed == units_total)

    def add_note(self, text: str) -> None:
        """Add a sentence to the report's note (shown after the summary)."""
        self.note = f"{self.note}; {text}" if self.note else text

    def note_cache_bytes(self, nbytes: int) -> None:
        """Track the largest amount of cache memory held during the run."""
        self.peak_cache_bytes = max(self.peak_cache_bytes, nbytes)

    def step_status(self) -> list[str]:
        """One entry per step of the run: computed, reused, partial, or "" when not evaluated."""
        status = []
        for step in range(self.total_steps):
            forwards, full = self._step_forwards.get(step, (0, 0))
            if forwards == 0:
                status.append("")
            elif full == forwards:
                status.append(COMPUTED)
            elif full == 0:
                status.append(REUSED)
            else:
                status.append(PARTIAL)
        return status

    @property
    def steps_computed(self) -> int:
        """Steps in which every unit ran."""
        return sum(1 for s in self.step_status() if s == COMPUTED)

    @property
    def steps_evaluated(self) -> int:
        """Steps in which the model ran at all."""
        return sum(1 for s in self.step_status() if s)

    @property
    def estimated_speedup(self) -> float:
        """Ideal speedup of the skippable work: units offered / units computed."""
        return self.units_total / self.units_computed if self.units_computed else 1.0

    def summary(self) -> str:
        """The one log line for this run."""
        line = (
            f"CacheKit {self.method} [{self.family}]: computed {self.steps_computed}/{self.steps_evaluated} steps, "
            f"{self.units_computed}/{self.units_total} {self.unit} ({self.estimated_speedup:.2f}x est. speedup), "
            f"cache held {format_bytes(self.peak_cache_bytes)}"
        )
        return f"{line}; {self.note}" if self.note else line

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (for the UI)."""
        return {
            "method": self.method,
            "family": self.family,
            "total_steps": self.total_steps,
            "steps_computed": self.steps_computed,
            "steps_evaluated": self.steps_evaluated,
            "unit": self.unit,
            "units_total": self.units_total,
            "units_computed": self.units_computed,
            "estimated_speedup": round(self.estimated_speedup, 3),
            "peak_cache_bytes": self.peak_cache_bytes,
            "steps": self.step_status(),
            "note": self.note,
            **self.extra,
        }


def format_bytes(nbytes: int) -> str:
    """Human-readable size, e.g. '1.5 MiB'."""
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
