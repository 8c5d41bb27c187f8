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
from typing import Any, Callable, Hashable, Optional

import torch

from ..runtime.attention_hooks import AttentionBranch, AttentionSite, EvaluationCounter, covers_batch, join_rows
from ..runtime.branches import BranchStore
from ..runtime.forward import ForwardContext
from .pyramid_attention_broadcast import check_skip_range, progress_in_window
from .validation import check_finite_range, check_percent_window

METHOD = "FasterCache"


@dataclass(frozen=True)
class FasterCacheConfig:
    """Settings of the FasterCache node. Windows are schedule progress (0 = first step, 1 = end);
    the defaults are diffusers' timestep ranges for an unshifted flow model (progress = 1 - t / 1000)."""

    spatial_attention_block_skip_range: int = 2
    spatial_attention_start_percent: float = 0.32  # diffusers (-1, 681)
    spatial_attention_end_percent: float = 1.0
    attention_weight: float = 0.5
    unconditional_batch_skip_range: int = 5
    unconditional_batch_start_percent: float = 0.36  # diffusers (-1, 641)
    unconditional_batch_end_percent: float = 1.0
    alpha_low_frequency: float = 1.1
    low_frequency_start_percent: float = 0.1  # diffusers (99, 901)
    low_frequency_end_percent: float = 0.9
    alpha_high_frequency: float = 1.1
    high_frequency_start_percent: float = 0.7  # diffusers (-1, 301)
    high_frequency_end_percent: float = 1.0

    def __post_init__(self) -> None:
        check_skip_range("spatial_attention_block_skip_range", self.spatial_attention_block_skip_range)
        check_skip_range("unconditional_batch_skip_range", self.unconditional_batch_skip_range)
        check_finite_range("attention_weight", self.attention_weight, -2.0, 2.0)
        check_finite_range("alpha_low_frequency", self.alpha_low_frequency, 0.0, 4.0)
        check_finite_range("alpha_high_frequency", self.alpha_high_frequency, 0.0, 4.0)
        for name in ("spatial_attention", "unconditional_batch", "low_frequency", "high_frequency"):
            try:
                check_percent_window(getattr(self, f"{name}_start_percent"), getattr(self, f"{name}_end_percent"))
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


def recent_pair(entry: Optional[tuple], signature: tuple, rows: int, evaluation: int) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """(o_t-2, o_t-1) from a site entry (signature, previous, last, evaluation of last) when `last`
    is the previous evaluation's output for an input of this shape and batch."""
    if entry is None or entry[0] != signature or entry[3] != evaluation - 1 or entry[2].shape[0] != rows:
        return None
    return entry[1], entry[2]


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
    """FasterCache's state for one sampling run: per-branch attention pairs and the CFG delta."""

    def __init__(self, config: FasterCacheConfig, progress_of_sigma: Callable[[float], float], report: Any = None) -> None:
        self.config = config
        self.progress_of_sigma = progress_of_sigma
        self.report = report
        self.branches: BranchStore[AttentionBranch] = BranchStore(AttentionBranch)
        self.attention_evaluations = EvaluationCounter()
        self.unconditional = UnconditionalDelta()
        self.cfg_iteration = -1
        self._cfg_key: Optional[Hashable] = None
        self._branches_key: Optional[Hashable] = None
        self._branches: Optional[set[Hashable]] = None
        self._seen_branches: set[Hashable] = set()
        self.unconditional_total = 0
        self.unconditional_computed = 0

    def _in(self, window: str, sigma: float) -> bool:
        c = self.config
        return progress_in_window(self.progress_of_sigma(sigma), getattr(c, f"{window}_start_percent"), getattr(c, f"{window}_end_percent"))

    # --- attention part (AttentionPolicy) ---

    def attend(self, ctx: ForwardContext, site: AttentionSite, compute: Callable[[], Any], sample: torch.Tensor) -> Any:
        """Extrapolate `site`'s output from its last two for every branch, or compute (and cache) it."""
        ctx.blocks_total += 1
        if not self.config.attention_enabled or not covers_batch(ctx, sample):
            ctx.blocks_computed += 1
            return compute()
        evaluation = self.attention_evaluations.at(ctx)
        signature = tuple(sample.shape[1:])
        branches = [self.branches.get(chunk.uuid) for chunk in ctx.chunks]
        self._seen_branches.update(chunk.uuid for chunk in ctx.chunks)
        decision_key = ("faster_cache", site.key)
        extrapolate_now = ctx.eval_state.get(decision_key)
        if extrapolate_now is None:  # decided once per evaluation, before any of its forwards updates the site
            extrapolate_now = ctx.may_cache and self._may_extrapolate(ctx, site, signature, evaluation)
            ctx.eval_state[decision_key] = extrapolate_now
        if extrapolate_now:
            pairs = [recent_pair(b.sites.get(site.key), signature, c.rows.stop - c.rows.start, evaluation) for b, c in zip(branches, ctx.chunks)]
            if all(pair is not None for pair in pairs):
                parts = []
                for branch, (previous, last) in zip(branches, pairs):
                    part = extrapolate(previous, last, self.config.attention_weight)
                    branch.sites[site.key] = (signature, last, part, evaluation)
                    parts.append(part)
                return join_rows(parts)
        ctx.blocks_computed += 1
        out = compute()
        if isinstance(out, torch.Tensor) and out.shape[0] == sample.shape[0]:
            for branch, chunk in zip(branches, ctx.chunks):
                part = out[chunk.rows]
                pair = recent_pair(branch.sites.get(site.key), signature, part.shape[0], evaluation)
                branch.sites[site.key] = (signature, pair[1] if pair is not None else part, part, evaluation)
        return out

    def _may_extrapolate(self, ctx: ForwardContext, site: AttentionSite, signature: tuple, evaluation: int) -> bool:
        """diffusers' rule on the run's evaluation index, for every branch taking part in this evaluation."""
        if not should_extrapolate_attention(evaluation, self.config.spatial_attention_block_skip_range,
                                            self._in("spatial_attention", ctx.sigma), has_recent_pair=True):
            return False
        for uuid in self._evaluation_branches(ctx):
            branch = self.branches.find(uuid)
            entry = branch.sites.get(site.key) if branch is not None else None
            if entry is None or entry[0] != signature or entry[3] != evaluation - 1:
                return False
        return True

    def _evaluation_branches(self, ctx: ForwardContext) -> set[Hashable]:
        """The branches this evaluation computes: as the CFG part announced, else every branch seen so far."""
        if self._branches_key == ctx.eval_key and self._branches is not None:
            return self._branches | {chunk.uuid for chunk in ctx.chunks}
        return self._seen_branches | {chunk.uuid for chunk in ctx.chunks}

    # --- CFG part (used by runtime/cfg_estimation.py) ---

    def skip_unconditional(self, eval_key: Hashable, sigma: float, batch_shape: torch.Size,
                           positive: frozenset[Hashable] = frozenset(), negative: frozenset[Hashable] = frozenset()) -> bool:
        """Decide, once per evaluation, whether the negative branch is estimated instead of computed.

        `positive` / `negative` are the conditioning uuids of each side; the attention part uses them
        to know which branches this evaluation computes.
        """
        if eval_key != self._cfg_key:
            self._cfg_key = eval_key
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
        self._branches_key = eval_key
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
        return self.branches.nbytes() + (delta.numel() * delta.element_size() if delta is not None else 0)

    def close(self) -> None:
        """Free every cached tensor and put the CFG part's counts into the run report."""
        if self.report is not None and self.unconditional_total:
            line = f"negative branch computed {self.unconditional_computed}/{self.unconditional_total} evaluations"
            self.report.extra["unconditional_computed"] = self.unconditional_computed
            self.report.extra["unconditional_total"] = self.unconditional_total
            self.report.note = f"{line}; {self.report.note}" if self.report.note else line
        self.branches.clear()
        self.unconditional = UnconditionalDelta()
