"""Per-run state of one installed cache: created when sampling starts, freed when it ends."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import torch

from ..families.table import Family
from .forward import ForwardContext, chunk_layout
from .report import RunReport
from .schedule import progress_of_sigma
from .step_clock import StepClock

log = logging.getLogger("CacheKit")


class MethodRun(Protocol):
    """What a method keeps for one sampling run (its per-branch caches)."""

    def cache_bytes(self) -> int:
        """Bytes of cached tensors held now."""

    def close(self) -> None:
        """Free every cached tensor."""


@dataclass(frozen=True)
class CacheSpec:
    """An installed cache: immutable settings that a node attaches to a cloned model.

    key: the name of its wrappers and of its run state in transformer_options.
    start_run: builds the method's per-run state (called once per sampling run).
    enabled: False when the settings can never reuse anything (then nothing is cached at all).
    unit: what the report counts in ForwardContext.blocks_total / blocks_computed.
    """

    key: str
    method: str
    family: Family
    config: Any
    start_run: Callable[["SamplingRun"], MethodRun]
    enabled: bool = True
    start_percent: float = 0.0
    end_percent: float = 1.0
    unit: str = "blocks"
    node_id: str | None = None
    on_report: Callable[[RunReport, "CacheSpec"], None] | None = None


class SamplingRun:
    """Everything one sampling run of one cache needs: clock, window, method state, report."""

    def __init__(
        self, spec: CacheSpec, sample_sigmas: Sequence[float], percent_to_sigma: Callable[[float], float],
        sampler_name: str = "", model_sampling: Any = None,
    ) -> None:
        self.spec = spec
        self.sampler_name = sampler_name
        self.model_sampling = model_sampling  # ComfyUI's, for naming the run's scheduler in calibration files
        self.clock = StepClock([float(s) for s in sample_sigmas])
        self._percent_to_sigma = percent_to_sigma
        self._progress: dict[float, float] = {}
        self.start_sigma = float(percent_to_sigma(spec.start_percent))
        self.end_sigma = float(percent_to_sigma(spec.end_percent))
        self.report = RunReport(method=spec.method, family=spec.family.name, total_steps=self.clock.total_steps, unit=spec.unit)
        self.current: ForwardContext | None = None
        self.disabled_reason: str | None = None
        self.evaluation = 0
        self._eval_key: tuple[int, float] | None = None
        self._eval_state: dict[str, Any] = {}
        self.method: MethodRun = spec.start_run(self)

    def progress_of_sigma(self, sigma: float) -> float:
        """Progress of `sigma` in the model's full schedule (0 = start, 1 = end), memoised per run."""
        progress = self._progress.get(sigma)
        if progress is None:
            progress = self._progress[sigma] = progress_of_sigma(sigma, self._percent_to_sigma)
        return progress

    def in_window(self, step: int) -> bool:
        """Whether step `step` lies inside the start/end percent window."""
        sigma = self.clock.sigma_of_step(step)
        return self.start_sigma >= sigma > self.end_sigma

    def disable(self, reason: str) -> None:
        """Stop caching for the rest of this run (results stay exact), with one warning."""
        if self.disabled_reason is None:
            self.disabled_reason = reason
            self.report.note = f"caching disabled: {reason}"
            log.warning("CacheKit %s: %s; caching is off for this run.", self.spec.method, reason)

    def begin_evaluation(self) -> None:
        """A new model evaluation starts (one PREDICT_NOISE call: all its CFG forwards)."""
        self.evaluation += 1

    def evaluation_key(self, sigma: float) -> tuple[int, float]:
        """Identifies the current evaluation; forwards of one evaluation share its decisions."""
        return (self.evaluation, sigma)

    def begin_forward(self, transformer_options: dict, x: torch.Tensor, has_control: bool) -> ForwardContext:
        """Open the context of one diffusion-model forward."""
        sigmas = transformer_options.get("sigmas")
        sigma = float(sigmas.reshape(-1)[0]) if isinstance(sigmas, torch.Tensor) else self.clock.sigma_of_step(0)
        step = self.clock.step_at(sigma)
        eval_key = self.evaluation_key(sigma)
        if eval_key != self._eval_key:
            self._eval_key = eval_key
            self._eval_state = {}
        chunks = chunk_layout(x.shape[0], transformer_options.get("cond_or_uncond"), transformer_options.get("uuids"))
        patches = transformer_options.get("patches") or {}
        in_loop_patch = any(patches.get(name) for name in self.spec.family.loop_patches)
        may_cache = self.spec.enabled and self.disabled_reason is None and not has_control and not in_loop_patch
        ctx = ForwardContext(
            step=step,
            sigma=sigma,
            chunks=chunks,
            may_cache=may_cache,
            in_window=may_cache and self.in_window(step),
            eval_key=eval_key,
            eval_state=self._eval_state,
        )
        self.current = ctx
        return ctx

    def end_forward(self, ctx: ForwardContext) -> None:
        """Close a forward: count what ran and how much cache is held."""
        self.current = None
        if ctx.aborted:
            return
        self.report.record_forward(ctx.step, ctx.blocks_total, ctx.blocks_computed)
        self.report.note_cache_bytes(self.method.cache_bytes())

    def finish(self) -> RunReport:
        """End the run: log the report, hand it to the UI hook, free every cached tensor."""
        self.method.close()
        self.current = None
        self._eval_state = {}
        if self.report.forwards:
            log.info(self.report.summary())
            if self.spec.on_report is not None:
                try:
                    self.spec.on_report(self.report, self.spec)
                except Exception:  # the UI must never break a finished run
                    log.exception("CacheKit: could not send the run report to the UI")
        return self.report

