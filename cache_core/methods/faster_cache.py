"""FasterCache (arXiv 2410.19355): attention extrapolation plus an estimated unconditional branch.

Two parts, each with diffusers' `FasterCacheConfig` rules and defaults:
- Attention: on an iteration that is not a multiple of `spatial_attention_block_skip_range`, inside
  its window, a spatial attention site returns `o_t + (o_t - o_{t-2}) * attention_weight` from its
  last two outputs instead of computing. Per branch and site; the two outputs must come from the
  two evaluations just before (so a branch evaluated only now and then never extrapolates over a gap).
- CFG: on an evaluation that is not a multiple of `unconditional_batch_skip_range`, inside its
  window, only the positive branch runs; the negative one is the positive output plus the
  negative-minus-positive difference stored at the last full evaluation, its low- and
  high-frequency parts (FFT over the last two dims, radius min(H, W) // 5) each scaled by the
  product of alpha_low / alpha_high over the skipped evaluations inside their windows.

Plain torch; the ComfyUI glue is runtime/attention_hooks.py and runtime/cfg_estimation.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Optional

import torch

from ..families.attention_sites import SPATIAL, attention_sites
from ..families.table import ATTENTION, COND_BATCH, FASTER_CACHE, Family
from ..runtime import trees
from ..runtime.attention_hooks import AttentionSite, covers_batch
from ..runtime.branches import BatchStore
from ..runtime.forward import ForwardContext
from ..settings import FLOAT, INT, check_settings, check_window, setting
from .pyramid_attention_broadcast import check_skip_range, progress_in_window  # noqa: F401
from .spec import MethodSpec, Placement

METHOD = FASTER_CACHE

PROGRESS = (
    "Schedule progress (0 = first step, 1 = end, as ComfyUI's start/end percent). diffusers' timestep windows "
    "are on a 0-1000 scale where timestep / 1000 = sigma for flow models; the default here is diffusers' {window} "
    "on an unshifted flow schedule (progress = 1 - sigma). Shifted schedules (Wan, Flux) cover higher sigmas."
)


def _start(what: str, default: float, diffusers: str) -> Any:
    return setting(FLOAT, default, f"Start of the window in which {what}. " + PROGRESS.format(window=diffusers),
                   min=0.0, max=1.0, step=0.01)


def _end(what: str, default: float) -> Any:
    return setting(FLOAT, default, f"End of the window in which {what}. An end equal to the start turns it off.",
                   min=0.0, max=1.0, step=0.01)


WINDOWS = ("spatial_attention", "unconditional_batch", "low_frequency", "high_frequency")


@dataclass(frozen=True)
class FasterCacheConfig:
    """Settings of the FasterCache node. Windows are schedule progress (0 = first step, 1 = end);
    the defaults are diffusers' timestep ranges for an unshifted flow model (progress = 1 - t / 1000)."""

    spatial_attention_block_skip_range: int = setting(
        INT, 2, "Compute spatial (self / joint) attention every N evaluations of each conditioning branch; in between "
        "extrapolate it from its last two outputs. 0 (or 1) turns the attention part off. Wan skips the whole "
        "self-attention module; Flux-style models skip only the attention kernel.", min=0, max=32)
    spatial_attention_start_percent: float = _start("attention may be extrapolated", 0.32, "(-1, 681)")
    spatial_attention_end_percent: float = _end("attention may be extrapolated", 1.0)
    attention_weight: float = setting(
        FLOAT, 0.5, "w in o_t + (o_t - o_t-2) * w, the extrapolation of attention outputs (diffusers' default 0.5).",
        min=-2.0, max=2.0, step=0.01)
    unconditional_batch_skip_range: int = setting(
        INT, 5, "Compute the negative (unconditional) branch every N evaluations; in between estimate it from the "
        "positive branch plus the stored negative-minus-positive difference. 0 (or 1) turns the CFG part off. "
        "Inactive at cfg 1 and with guidance-distilled models used without a negative prompt.", min=0, max=32)
    unconditional_batch_start_percent: float = _start("the negative branch may be estimated", 0.36, "(-1, 641)")
    unconditional_batch_end_percent: float = _end("the negative branch may be estimated", 1.0)
    alpha_low_frequency: float = setting(
        FLOAT, 1.1, "Each estimated evaluation inside the low-frequency window multiplies the low-frequency part of the "
        "stored difference by this (compounding until the next full evaluation), as in FasterCache.",
        min=0.0, max=4.0, step=0.01)
    low_frequency_start_percent: float = _start("alpha_low_frequency applies", 0.1, "(99, 901)")
    low_frequency_end_percent: float = _end("alpha_low_frequency applies", 0.9)
    alpha_high_frequency: float = setting(
        FLOAT, 1.1, "The same for the high-frequency part (frequencies outside a disc of radius min(H, W) / 5).",
        min=0.0, max=4.0, step=0.01)
    high_frequency_start_percent: float = _start("alpha_high_frequency applies", 0.7, "(-1, 301)")
    high_frequency_end_percent: float = _end("alpha_high_frequency applies", 1.0)

    def __post_init__(self) -> None:
        check_settings(self)
        for name in WINDOWS:
            try:
                check_window(f"{name}_start_percent", getattr(self, f"{name}_start_percent"),
                             f"{name}_end_percent", getattr(self, f"{name}_end_percent"))
            except ValueError as err:
                raise ValueError(f"{name} window: {err}") from None

    @property
    def attention_hooked(self) -> bool:
        """Whether the attention part needs its hooks (a skip range above 1)."""
        return self.spatial_attention_block_skip_range > 1

    @property
    def attention_enabled(self) -> bool:
        """Whether attention may ever be extrapolated."""
        return self.attention_hooked and self.spatial_attention_start_percent < self.spatial_attention_end_percent

    @property
    def unconditional_enabled(self) -> bool:
        """Whether the unconditional branch may ever be estimated."""
        return self.unconditional_batch_skip_range > 1 and self.unconditional_batch_start_percent < self.unconditional_batch_end_percent

    @property
    def enabled(self) -> bool:
        """Whether this configuration can save anything at all."""
        return self.attention_enabled or self.unconditional_enabled


def should_extrapolate_attention(iteration: int, skip_range: int, in_window: bool, has_recent_pair: bool) -> bool:
    """diffusers' attention rule (skip inside the window unless iteration > 0 is a multiple of the range),
    made safe: it needs the outputs of the two previous evaluations, so iteration 0 always computes."""
    return in_window and has_recent_pair and skip_range > 1 and iteration > 0 and iteration % skip_range != 0


def should_skip_unconditional(iteration: int, skip_range: int, in_window: bool) -> bool:
    """diffusers' rule: estimate the negative branch after iteration 0, inside the window, off the beat."""
    return iteration > 0 and in_window and skip_range > 1 and iteration % skip_range != 0


def extrapolate(previous: torch.Tensor, last: torch.Tensor, weight: float) -> torch.Tensor:
    """`last + (last - previous) * weight` in one kernel."""
    return torch.lerp(previous, last, 1.0 + weight)


def low_frequency_mask(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean [H, W] mask of the low frequencies in `torch.fft.fft2` layout: a disc of radius
    min(H, W) // 5 around the centre of the fftshift-ed spectrum (diffusers' split)."""
    radius = min(height, width) // 5
    y = torch.arange(height, device=device).view(-1, 1) - height // 2
    x = torch.arange(width, device=device).view(1, -1) - width // 2
    return torch.fft.ifftshift(y * y + x * x <= radius * radius)


def split_low_high(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The low- and high-frequency parts of `fft2(x)` over the last two dims (unshifted layout)."""
    spectrum = torch.fft.fft2(x.float())
    mask = low_frequency_mask(x.shape[-2], x.shape[-1], x.device)
    return spectrum * mask, spectrum * ~mask


def estimate_unconditional(positive: torch.Tensor, delta: torch.Tensor, low_scale: float, high_scale: float) -> torch.Tensor:
    """`positive` plus `delta` (negative - positive, float32) with its low / high frequencies scaled.

    Equal to diffusers' `ifft2(ifftshift(LF_pos + low_scale*dLF + HF_pos + high_scale*dHF)).real`,
    computed as one FFT of the delta (the positive output's own FFT round trip cancels out).
    """
    if low_scale == high_scale:
        correction = delta * low_scale
    else:
        mask = low_frequency_mask(delta.shape[-2], delta.shape[-1], delta.device)
        weights = torch.where(mask, torch.tensor(low_scale, device=delta.device), torch.tensor(high_scale, device=delta.device))
        correction = torch.fft.ifft2(torch.fft.fft2(delta) * weights).real
    return (positive.float() + correction).to(positive.dtype)


@dataclass
class UnconditionalDelta:
    """The CFG part's state: the negative-minus-positive difference of the last full evaluation.

    delta: float32, in the layout of the model's outputs; output_scale: denoised output per unit of
    raw model output at that evaluation's sigma (to carry the delta to another sigma).
    low_scale / high_scale: the alphas accumulated over the estimates since then.
    """

    delta: Optional[torch.Tensor] = None
    output_scale: float = 1.0
    low_scale: float = 1.0
    high_scale: float = 1.0


class FasterCacheRun:
    """FasterCache's state for one sampling run: per-branch attention pairs and the CFG delta
    (an AttentionPolicy and an UnconditionalPolicy)."""

    def __init__(self, config: FasterCacheConfig, progress_of_sigma: Any, report: Any = None) -> None:
        self.config = config
        self.progress_of_sigma = progress_of_sigma
        self.report = report
        self.outputs = BatchStore()  # per site and input signature: "previous" and "last" outputs
        self.last_evaluation: dict[tuple[Hashable, Hashable], int] = {}  # (site, uuid) -> evaluation of "last"
        self._attention_evaluation: Optional[int] = None
        self.attention_iteration = -1
        self.unconditional = UnconditionalDelta()
        self.cfg_iteration = -1
        self._cfg_evaluation: Optional[int] = None
        self._branches_evaluation: Optional[int] = None
        self._branches: Optional[set[Hashable]] = None
        self._seen_branches: set[Hashable] = set()
        self.unconditional_total = 0
        self.unconditional_computed = 0

    def _in(self, window: str, sigma: float) -> bool:
        c = self.config
        return progress_in_window(self.progress_of_sigma(sigma), getattr(c, f"{window}_start_percent"), getattr(c, f"{window}_end_percent"))

    # --- attention part (AttentionPolicy) ---

    def _iteration(self, ctx: ForwardContext) -> int:
        """Index of the current evaluation among those that reached attention (diffusers' iteration)."""
        if ctx.evaluation != self._attention_evaluation:
            self._attention_evaluation = ctx.evaluation
            self.attention_iteration += 1
        return self.attention_iteration

    def attention_before(self, ctx: ForwardContext, site: AttentionSite, sample: torch.Tensor) -> Optional[torch.Tensor]:
        """`site`'s output extrapolated from its last two for every branch, or None to compute."""
        if not self.config.attention_enabled or not covers_batch(ctx, sample):
            ctx.count(computed=True)
            return None
        iteration = self._iteration(ctx)
        name = (site.key, tuple(sample.shape[1:]))
        self._seen_branches.update(chunk.uuid for chunk in ctx.chunks)
        decision = ("faster_cache", site.key)
        extrapolate_now = ctx.decisions.get(decision)
        if extrapolate_now is None:  # decided once per evaluation, before any of its forwards updates the site
            extrapolate_now = self._may_extrapolate(ctx, name, iteration)
            ctx.decisions[decision] = extrapolate_now
        out = None
        if extrapolate_now and all(self.last_evaluation.get((name, c.uuid)) == iteration - 1 for c in ctx.chunks):
            previous = self.outputs.get((name, "previous"), ctx.chunks, sample.device)
            last = self.outputs.get((name, "last"), ctx.chunks, sample.device)
            if previous is not None and last is not None:
                out = extrapolate(previous, last, self.config.attention_weight)
                self._keep(ctx, name, iteration, last, out)
        ctx.count(computed=out is None)
        return out

    def attention_after(self, ctx: ForwardContext, site: AttentionSite, sample: torch.Tensor, out: Any) -> None:
        """Keep the computed output as the newest of the pair."""
        if not self.config.attention_enabled or not isinstance(out, torch.Tensor) or not covers_batch(ctx, out):
            return
        iteration = self.attention_iteration
        name = (site.key, tuple(sample.shape[1:]))
        self._keep(ctx, name, iteration, self._previous(ctx, name, iteration, out), out)

    def _previous(self, ctx: ForwardContext, name: Hashable, iteration: int, out: torch.Tensor) -> torch.Tensor:
        """The "previous" of the new pair, branch by branch: the branch's last output when it is from the
        evaluation before, else the new output itself (no slope yet). A batched forward can hold a branch
        computed at the previous evaluation beside one that was estimated there."""
        recent = [self.last_evaluation.get((name, c.uuid)) == iteration - 1 for c in ctx.chunks]
        if not any(recent):
            return out
        if all(recent):
            last = self.outputs.get((name, "last"), ctx.chunks)
            return last if last is not None else out
        parts = []
        for chunk, is_recent in zip(ctx.chunks, recent):
            last = self.outputs.get((name, "last"), (chunk,)) if is_recent else None
            parts.append(last if last is not None else out[chunk.rows])
        return trees.cat_rows(parts)

    def _keep(self, ctx: ForwardContext, name: Hashable, iteration: int, previous: torch.Tensor, last: torch.Tensor) -> None:
        self.outputs.put((name, "previous"), ctx.chunks, previous)
        self.outputs.put((name, "last"), ctx.chunks, last)
        for chunk in ctx.chunks:
            self.last_evaluation[(name, chunk.uuid)] = iteration

    def _may_extrapolate(self, ctx: ForwardContext, name: Hashable, iteration: int) -> bool:
        """diffusers' rule on the run's evaluation index, for every branch taking part in this evaluation."""
        if not ctx.caching or not should_extrapolate_attention(
                iteration, self.config.spatial_attention_block_skip_range, self._in("spatial_attention", ctx.sigma), has_recent_pair=True):
            return False
        return all(self.last_evaluation.get((name, uuid)) == iteration - 1 for uuid in self._evaluation_branches(ctx))

    def _evaluation_branches(self, ctx: ForwardContext) -> set[Hashable]:
        """The branches this evaluation computes: as the CFG part announced, else every branch seen so far."""
        if self._branches_evaluation == ctx.evaluation and self._branches is not None:
            return self._branches | {chunk.uuid for chunk in ctx.chunks}
        return self._seen_branches | {chunk.uuid for chunk in ctx.chunks}

    # --- CFG part (UnconditionalPolicy, used by runtime/cfg_estimation.py) ---

    def skip_unconditional(self, evaluation: int, sigma: float, batch_shape: torch.Size,
                           positive: frozenset[Hashable] = frozenset(), negative: frozenset[Hashable] = frozenset()) -> bool:
        """Decide, once per evaluation, whether the negative branch is estimated instead of computed.

        `positive` / `negative` are the conditioning uuids of each side; the attention part uses them
        to know which branches this evaluation computes.
        """
        if evaluation != self._cfg_evaluation:
            self._cfg_evaluation = evaluation
            self.cfg_iteration += 1
            self.unconditional_total += 1
        state = self.unconditional
        skip = (
            self.config.unconditional_enabled
            and state.delta is not None
            and state.delta.shape == batch_shape
            and should_skip_unconditional(self.cfg_iteration, self.config.unconditional_batch_skip_range, self._in("unconditional_batch", sigma))
        )
        if not skip:
            self.unconditional_computed += 1
        self._branches_evaluation = evaluation
        self._branches = set(positive) if skip else set(positive) | set(negative)
        return skip

    def estimate_negative(self, positive: torch.Tensor, sigma: float, output_scale: float) -> torch.Tensor:
        """The negative branch's output, estimated from the positive one (diffusers' compounding alphas)."""
        state = self.unconditional
        if self._in("low_frequency", sigma):
            state.low_scale *= self.config.alpha_low_frequency
        if self._in("high_frequency", sigma):
            state.high_scale *= self.config.alpha_high_frequency
        carry = output_scale / state.output_scale
        return estimate_unconditional(positive, state.delta, state.low_scale * carry, state.high_scale * carry)

    def record_negative(self, positive: torch.Tensor, negative: torch.Tensor, output_scale: float) -> None:
        """Store negative - positive of a full evaluation (float32)."""
        if not self.config.unconditional_enabled:
            return
        self.unconditional = UnconditionalDelta(delta=negative.float() - positive.float(), output_scale=output_scale)

    # --- run lifecycle ---

    def cache_bytes(self) -> int:
        """Bytes of cached tensors held now."""
        delta = self.unconditional.delta
        return self.outputs.nbytes() + (delta.numel() * delta.element_size() if delta is not None else 0)

    def close(self, run: Any) -> None:
        """Free every cached tensor and put the CFG part's counts into the run report."""
        if self.report is not None and self.unconditional_total:
            self.report.extra["unconditional_computed"] = self.unconditional_computed
            self.report.extra["unconditional_total"] = self.unconditional_total
            self.report.add_note(f"negative branch computed {self.unconditional_computed}/{self.unconditional_total} evaluations")
        self.outputs.clear()
        self.last_evaluation.clear()
        self.unconditional = UnconditionalDelta()


def place(config: FasterCacheConfig, family: Family) -> Placement:
    """Attention sites for the attention part (where the family has spatial attention), and the
    cond batch for the CFG part."""
    sites = set()
    if config.attention_hooked and ATTENTION in family.sites and attention_sites(family, {SPATIAL}):
        sites.add(ATTENTION)
    if config.unconditional_batch_skip_range > 1 and COND_BATCH in family.sites:
        sites.add(COND_BATCH)
    if sites:
        return frozenset(sites)
    if not config.attention_hooked and config.unconditional_batch_skip_range <= 1:
        return frozenset({COND_BATCH}) if COND_BATCH in family.sites else frozenset({ATTENTION})  # off: nothing is hooked
    reasons = [family.reason(site) for site in (ATTENTION, COND_BATCH) if site not in family.sites]
    return "; ".join(reasons)


FASTER_CACHE_SPEC = MethodSpec(
    name=METHOD,
    key="cachekit_faster_cache",
    config_type=FasterCacheConfig,
    place=place,
    start=lambda config, run: FasterCacheRun(config, run.progress_of_sigma, run.report),
    attention_kinds=lambda config: frozenset({SPATIAL}),
)
