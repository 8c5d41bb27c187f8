"""Schedule progress: where a sigma lies in the model's full noise schedule, from 0 (start) to 1 (end).

Progress is the inverse of ComfyUI's `model_sampling.percent_to_sigma`, so it does not depend on the
run: a denoise 0.6 run, a KSamplerAdvanced range or one Wan 2.2 expert's half of the steps all see
the same progress for the same sigma.
"""
from __future__ import annotations

from typing import Callable


def progress_of_sigma(sigma: float, percent_to_sigma: Callable[[float], float], iterations: int = 40) -> float:
    """The schedule progress p in [0, 1] with percent_to_sigma(p) == sigma (bisection)."""
    low, high = 0.0, 1.0
    if sigma >= float(percent_to_sigma(1e-9)):
        return 0.0
    if sigma <= 0.0:
        return 1.0
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        if float(percent_to_sigma(mid)) > sigma:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)
