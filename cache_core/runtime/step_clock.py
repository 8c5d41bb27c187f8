"""The step clock: which sampler step a model evaluation belongs to.

Steps come from the sampler's per-step callback (CacheKit always hands the sampler one) and
from the run's own sigma schedule, never from counting model calls. That keeps the clock right
for partial step ranges (KSamplerAdvanced, denoise < 1, split sigmas) and for samplers that
evaluate the model several times per step (heun's correction at sigma[i + 1], dpm_2's midpoint).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass
class StepClock:
    """Maps a model evaluation onto the index of the sampler step it belongs to.

    `sample_sigmas` are this run's sigmas (steps + 1 entries, host floats). The sampler reports
    each finished step through `step_finished(i)`. A sampler that never reports is detected when
    an evaluation's sigma lies two or more steps past the reported count; from then on the
    position of sigma in the schedule decides.
    """

    sample_sigmas: Sequence[float]
    finished_steps: int = 0

    @property
    def total_steps(self) -> int:
        """Number of steps in this run."""
        return max(len(self.sample_sigmas) - 1, 0)

    def step_finished(self, index: int) -> None:
        """Record that the sampler finished step `index` (0-based)."""
        self.finished_steps = max(self.finished_steps, index + 1)

    def schedule_index(self, sigma: float) -> int:
        """Index of the last step whose starting sigma is at or above `sigma`."""
        tolerance = 1e-5 * abs(sigma) + 1e-8
        index = 0
        for i in range(self.total_steps):
            if self.sample_sigmas[i] + tolerance >= sigma:
                index = i
            else:
                break
        return index

    def step_at(self, sigma: float) -> int:
        """The step that an evaluation at `sigma` belongs to."""
        by_sigma = self.schedule_index(sigma)
        if by_sigma > self.finished_steps + 1:
            return by_sigma
        return min(self.finished_steps, max(self.total_steps - 1, 0))

    def sigma_of_step(self, step: int) -> float:
        """The sigma at which step `step` starts."""
        return float(self.sample_sigmas[min(step, len(self.sample_sigmas) - 1)])

    def progress_of_step(self, step: int) -> float:
        """Fraction of this run completed when step `step` starts, in [0, 1]."""
        return step / self.total_steps if self.total_steps else 0.0
