"""Per-run state of one installed cache: created when sampling starts, freed when it ends."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Optional, Sequence

import torch

from ..families.table import Family
from .forward import ALTERED, BASELINE, REPEAT, ForwardContext, chunk_layout, forward_signature
from .block_stack import StackLayout
from .report import RunReport
from .schedule import progress_of_sigma
from .step_clock import StepClock

log = logging.getLogger("CacheKit")


@dataclass(frozen=True)
class CacheSpec:
    """An installed cache: the immutable settings a node attaches to a cloned model.

    method: the method's spec (cache_core.methods.spec.MethodSpec); config: its validated settings;
    sites: where it is installed on this model (cache_core.methods.spec sites); node_name: the
    node's display name (for messages).
    """

    method: Any
    config: Any
    family: Family
    sites: frozenset[str]
    node_id: Optional[str] = None
    node_name: str = ""
    on_report: Optional[Callable[[RunReport, "CacheSpec"], None]] = None
    stack_lengths: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.method.key

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def enabled(self) -> bool:
        return bool(getattr(self.config, "enabled", True))


class SamplingRun:
    """Everything one sampling run of one cache needs: clock, window, method state, report.

    Forwards may run in several threads at once (ComfyUI's multi-GPU work units): `lock` guards
    every change to the run's state; decisions are shared per (model evaluation, device).
    """

    def __init__(
        self, spec: CacheSpec, sample_sigmas: Sequence[float], percent_to_sigma: Callable[[float], float],
        sampler_name: str = "", model_sampling: Any = None, baseline: tuple = ((), ()),
    ) -> None:
        self.spec = spec
        self.lock = threading.RLock()
        self.sampler_name = sampler_name
        self.model_sampling = model_sampling  # ComfyUI's, for naming the run's scheduler in calibration files
        self.clock = StepClock([float(s) for s in sample_sigmas])
        self._percent_to_sigma = percent_to_sigma
        self._progress: dict[float, float] = {}
        window = spec.method.window(spec.config)
        self.start_sigma = float(percent_to_sigma(window[0]))
        self.end_sigma = float(percent_to_sigma(window[1]))
        self.baseline = baseline
        self.report = RunReport(method=spec.name, family=spec.family.name, total_steps=self.clock.total_steps,
                                unit=spec.method.unit(spec.sites))
        self.layout = StackLayout(spec.family, spec.stack_lengths) if spec.stack_lengths else None
        self.disabled_reason: Optional[str] = None
        self.completed = False
        self.evaluation = 0
        self.other_forwards = 0
        self._seen: set[tuple[int, Hashable]] = set()
        self._decisions: dict[tuple[int, Any], dict[str, Any]] = {}
        self.state: Any = spec.method.start(spec.config, self)

    # --- schedule ---

    def progress_of_sigma(self, sigma: float) -> float:
        """Progress of `sigma` in the model's full schedule (0 = start, 1 = end), memoised per run."""
        progress = self._progress.get(sigma)
        if progress is None:
            progress = self._progress[sigma] = progress_of_sigma(sigma, self._percent_to_sigma)
        return progress

    def in_window(self, step: int) -> bool:
        """Whether step `step` lies inside the method's start/end percent window."""
        sigma = self.clock.sigma_of_step(step)
        return self.start_sigma >= sigma > self.end_sigma

    # --- lifecycle ---

    def disable(self, reason: str) -> None:
        """Stop caching for the rest of this run (results stay exact), with one warning."""
        with self.lock:
            if self.disabled_reason is None:
                self.disabled_reason = reason
                self.report.add_note(f"caching disabled: {reason}")
                log.warning("CacheKit %s: %s; caching is off for this run.", self.spec.name, reason)

    def begin_evaluation(self) -> None:
        """A new model evaluation starts (one PREDICT_NOISE call: all its CFG forwards)."""
        with self.lock:
            self.evaluation += 1
            self._seen = {entry for entry in self._seen if entry[0] == self.evaluation}
            self._decisions = {k: v for k, v in self._decisions.items() if k[0] == self.evaluation}

    def open_forward(self, options: dict, x: Any, has_control: bool) -> ForwardContext:
        """The context of one diffusion-model forward, from its own transformer_options."""
        sigmas = options.get("sigmas")
        sigma = float(sigmas.reshape(-1)[0]) if isinstance(sigmas, torch.Tensor) else self.clock.sigma_of_step(0)
        batch = x.shape[0] if isinstance(x, torch.Tensor) else int(getattr(x, "shape", [1])[0])
        chunks = chunk_layout(batch, options.get("cond_or_uncond"), options.get("uuids"))
        device = options.get("multigpu_thread_device")
        if device is None and isinstance(x, torch.Tensor):
            device = x.device
        with self.lock:
            step = self.clock.step_at(sigma)
            kind = self._kind(options, chunks)
            patches = options.get("patches") or {}
            in_loop_patch = any(patches.get(name) for name in self.spec.family.loop_patches)
            caching = (kind == BASELINE and self.spec.enabled and self.disabled_reason is None
                       and not has_control and not in_loop_patch)
            decisions = self._decisions.setdefault((self.evaluation, str(device)), {})
            if kind != BASELINE:
                self.other_forwards += 1
            return ForwardContext(
                run=self, step=step, sigma=sigma, progress=self.progress_of_sigma(sigma), chunks=chunks, kind=kind,
                caching=caching, in_window=caching and self.in_window(step), evaluation=self.evaluation, device=device,
                decisions=decisions,
            )

    def _kind(self, options: dict, chunks: tuple) -> str:
        if forward_signature(options) != self.baseline:
            return ALTERED
        keys = {(self.evaluation, chunk.uuid) for chunk in chunks}
        if keys & self._seen:
            return REPEAT
        self._seen |= keys
        return BASELINE

    def close_forward(self, ctx: ForwardContext) -> None:
        """Count what a forward computed and how much cache is held."""
        if ctx.aborted or ctx.kind != BASELINE:
            return
        with self.lock:
            self.report.record_forward(ctx.step, ctx.units_total, ctx.units_computed)
            self.report.note_cache_bytes(self.state.cache_bytes())

    def finish(self, completed: bool) -> RunReport:
        """End the run: log the report, hand it to the UI hook, free every cached tensor.

        completed: the sampler returned normally (False when it was interrupted or failed).
        """
        self.completed = completed
        with self.lock:
            try:
                self.state.close(self)
            finally:
                self._decisions = {}
        if self.other_forwards:
            self.report.add_note(f"{self.other_forwards} forwards of an altered or re-run model were computed without the cache")
        if self.report.forwards:
            log.info(self.report.summary())
            if self.spec.on_report is not None:
                try:
                    self.spec.on_report(self.report, self.spec)
                except Exception:  # the UI must never break a finished run
                    log.exception("CacheKit: could not send the run report to the UI")
        return self.report
