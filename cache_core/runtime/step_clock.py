"""The step clock: which sampler step a model evaluation belongs to, from the run's own sigmas.

An evaluation belongs to the last step whose starting sigma is at or above its sigma. This is
right for partial step ranges (KSamplerAdvanced, denoise < 1, split sigmas: steps count from the
run's first sigma) and needs no call counting. Samplers that evaluate the model several times per
step are labelled by sigma too: dpm_2's midpoint stays in its step; heun's correction at
sigma[i + 1] counts toward step i + 1 (where its sigma lies). Which evaluation a forward belongs
to is counted separately (SamplingRun.begin_evaluation), so the two evaluations at sigma[i + 1]
never share a decision.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass
class StepClock:
    """Maps a model evaluation's sigma onto the index of the sampler step it belongs to."""

    sample_sigmas: Sequence[float]

    @property
    def total_steps(self) -> int:
        """Number of steps in this run."""
        return max(len(self.sample_sigmas) - 1, 0)

    def step_at(self, sigma: float) -> int:
        """Index of the last step whose starting sigma is at or above `sigma`."""
        tolerance = 1e-5 * abs(sigma) + 1e-8
        index = 0
        for i in range(self.total_steps):
            if self.sample_sigmas[i] + tolerance >= sigma:
                index = i
            else:
                break
        return index

    def sigma_of_step(self, step: int) -> float:
        """The sigma at which step `step` starts."""
        return float(self.sample_sigmas[min(step, len(self.sample_sigmas) - 1)])

    def progress_of_step(self, step: int) -> float:
        """Fraction of this run completed when step `step` starts, in [0, 1]."""
        return step / self.total_steps if self.total_steps else 0.0
