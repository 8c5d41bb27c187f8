"""Naming the scheduler of a sampling run from its sigmas (samplers pass ComfyUI sigmas, not names)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

log = logging.getLogger("CacheKit")

CUSTOM = "custom"
MAX_DENOISE_STRETCH = 5  # denoise down to 0.2: KSampler then schedules steps / denoise steps


def _matches_a_slice(full: torch.Tensor, sigmas: torch.Tensor) -> bool:
    """Whether `sigmas` is a contiguous run of `full` (a partial run's final sigma may be forced to 0)."""
    body = sigmas[:-1] if float(sigmas[-1]) == 0.0 else sigmas
    starts = torch.nonzero(torch.isclose(full, body[0], rtol=1e-4, atol=1e-6)).flatten().tolist()
    for start in starts:
        window = full[start:start + body.numel()]
        if window.numel() == body.numel() and torch.allclose(window, body, rtol=1e-4, atol=1e-6):
            return True
    return False


def identify_scheduler(model_sampling: Any, sigmas: Sequence[float]) -> str:
    """The name of the ComfyUI scheduler that produced `sigmas`, or "custom".

    Recognises full runs, denoise < 1 (the tail of a longer schedule) and KSamplerAdvanced step
    ranges (a slice of the schedule) for every scheduler in comfy.samplers.SCHEDULER_NAMES.
    """
    if model_sampling is None or len(sigmas) < 2:
        return CUSTOM
    try:
        import comfy.samplers
    except ImportError:
        return CUSTOM
    run = torch.tensor([float(s) for s in sigmas], dtype=torch.float64)
    steps = run.numel() - 1
    for name in comfy.samplers.SCHEDULER_NAMES:
        for total in range(steps, steps * MAX_DENOISE_STRETCH + 1):
            try:
                full = comfy.samplers.calculate_sigmas(model_sampling, name, total).double().cpu()
            except Exception:  # a scheduler that cannot produce this many steps
                break
            if full.numel() >= run.numel() and _matches_a_slice(full, run):
                return name
    return CUSTOM
