"""Pyramid Attention Broadcast (PAB, arXiv 2408.12588): reuse attention outputs between evaluations.

Rule as in diffusers' `PyramidAttentionBroadcastHook`: an attention site is computed when it has no
cache, at iteration 0, outside its kind's timestep window, or every `block_skip_range`-th iteration;
otherwise its last output is returned unchanged. Unlike diffusers, the iteration and the cache are
per conditioning branch (uuid) and per site, and the iteration counts model evaluations, so the
negative branch never receives the positive branch's attention and batched and split CFG decide
alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..families.attention_sites import CROSS, SPATIAL, TEMPORAL, attention_sites
from ..families.table import ATTENTION, PYRAMID_ATTENTION_BROADCAST, Family
from ..runtime.attention_hooks import AttentionBranch, AttentionSite, branch_turns, covers_batch
from ..runtime.branches import BatchStore, BranchStore
from ..runtime.forward import ForwardContext
from ..settings import FLOAT, INT, check_settings, check_window, setting
from .spec import MethodSpec, Placement

METHOD = PYRAMID_ATTENTION_BROADCAST
KINDS = (SPATIAL, TEMPORAL, CROSS)

# diffusers' (100, 800) timestep window, as schedule progress of an unshifted flow model (sigma = t / 1000 = 1 - progress).
DEFAULT_WINDOW = (0.2, 0.9)

WINDOW_NOTE = (
    "Schedule progress: 0 = first step, 1 = end, as ComfyUI's start/end percent. diffusers' default timestep "
    "window (100, 800) on its 0-1000 scale means sigma between 0.8 and 0.1 (timestep / 1000 = sigma for flow "
    "models); on an unshifted flow schedule (sigma = 1 - progress) that is start 0.2, end 0.9, the defaults. "
    "With a shifted schedule (Wan, Flux) the same percents cover higher sigmas."
)
_KIND_TEXT = {
    SPATIAL: "spatial (self / joint) attention: Flux, Chroma and HunyuanVideo joint attention, Wan self-attention",
    TEMPORAL: "temporal attention (attention along frames only; none of the supported families has it yet)",
    CROSS: "cross-attention to the text (Wan, LTXV; Flux-style models have none)",
}


def _skip_range(kind: str, default: int) -> Any:
    return setting(
        INT, default, f"Compute {_KIND_TEXT[kind]} every N evaluations of each conditioning branch and reuse its last "
        "output in between (diffusers' block_skip_range; the PAB paper uses larger ranges for cross than spatial "
        "attention). 0 (or 1) turns reuse off for this kind. Flux-style models reuse only the attention kernel "
        "(projections still run); Wan reuses the whole attention module.", min=0, max=32)


def _start(kind: str) -> Any:
    return setting(FLOAT, DEFAULT_WINDOW[0], f"Start of the window in which {kind} attention may be reused. {WINDOW_NOTE}",
                   min=0.0, max=1.0, step=0.01)


def _end(kind: str) -> Any:
    return setting(FLOAT, DEFAULT_WINDOW[1], f"End of the window in which {kind} attention may be reused; later steps "
                   "compute it again. An end equal to the start turns this kind off.", min=0.0, max=1.0, step=0.01)


@dataclass(frozen=True)
class PyramidAttentionBroadcastConfig:
    """Settings of the PAB node: per attention kind, a skip range (0 = never reuse) and a window of
    schedule progress (0 = first step, 1 = end) in which reuse may happen."""

    spatial_attention_block_skip_range: int = _skip_range(SPATIAL, 2)
    spatial_attention_start_percent: float = _start(SPATIAL)
    spatial_attention_end_percent: float = _end(SPATIAL)
    temporal_attention_block_skip_range: int = _skip_range(TEMPORAL, 0)
    temporal_attention_start_percent: float = _start(TEMPORAL)
    temporal_attention_end_percent: float = _end(TEMPORAL)
    cross_attention_block_skip_range: int = _skip_range(CROSS, 0)
    cross_attention_start_percent: float = _start(CROSS)
    cross_attention_end_percent: float = _end(CROSS)

    def __post_init__(self) -> None:
        check_settings(self)
        for kind in KINDS:
            try:
                check_window(f"{kind}_attention_start_percent", self.window(kind)[0], f"{kind}_attention_end_percent", self.window(kind)[1])
            except ValueError as err:
                raise ValueError(f"{kind} attention window: {err}") from None

    def skip_range(self, kind: str) -> int:
        """Recompute every this many iterations for attention of `kind` (0 or 1: always compute)."""
        return int(getattr(self, f"{kind}_attention_block_skip_range"))

    def window(self, kind: str) -> tuple[float, float]:
        """(start_percent, end_percent) of the reuse window for attention of `kind`."""
        return getattr(self, f"{kind}_attention_start_percent"), getattr(self, f"{kind}_attention_end_percent")

    def kind_active(self, kind: str) -> bool:
        """Whether attention of `kind` can ever be reused."""
        start, end = self.window(kind)
        return self.skip_range(kind) > 1 and start < end

    @property
    def active_kinds(self) -> frozenset[str]:
        """The attention kinds that may be reused."""
        return frozenset(kind for kind in KINDS if self.kind_active(kind))

    @property
    def hooked_kinds(self) -> frozenset[str]:
        """The attention kinds to hook: every kind with a skip range (even with an empty window)."""
        return frozenset(kind for kind in KINDS if self.skip_range(kind) > 1)

    @property
    def enabled(self) -> bool:
        """Whether this configuration can reuse anything at all."""
        return bool(self.active_kinds)


def check_skip_range(name: str, value: int) -> None:
    """Raise ValueError unless `value` is a whole number >= 0 (0 = off)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0 (0 turns it off), got {value!r}.")


def progress_in_window(progress: float, start_percent: float, end_percent: float) -> bool:
    """Whether schedule progress lies in [start_percent, end_percent) (ComfyUI's start/end convention)."""
    return start_percent <= progress < end_percent


def should_compute(iteration: int, skip_range: int, in_window: bool, has_cache: bool) -> bool:
    """diffusers' PAB rule: compute unless cached, past iteration 0, in the window and off the skip beat."""
    return not has_cache or iteration == 0 or not in_window or skip_range <= 1 or iteration % skip_range == 0


class PyramidAttentionBroadcastRun:
    """PAB's state for one sampling run: per branch and site, the last output (an AttentionPolicy)."""

    def __init__(self, config: PyramidAttentionBroadcastConfig) -> None:
        self.config = config
        self.branches: BranchStore[AttentionBranch] = BranchStore(AttentionBranch)
        self.outputs = BatchStore()

    def attention_before(self, ctx: ForwardContext, site: AttentionSite, sample: torch.Tensor) -> Optional[torch.Tensor]:
        """The cached output of `site` for every branch of this batch, when each may reuse it."""
        if not self.config.kind_active(site.kind) or not covers_batch(ctx, sample):
            ctx.count(computed=True)
            return None
        turns = branch_turns(ctx, self.branches)
        in_window = progress_in_window(ctx.progress, *self.config.window(site.kind))
        skip_range = self.config.skip_range(site.kind)
        reuse = None
        if all(not should_compute(turn.iteration, skip_range, in_window, has_cache=True) for turn in turns):
            reuse = self.outputs.get((site.key, tuple(sample.shape[1:])), ctx.chunks, sample.device)
        ctx.count(computed=reuse is None)
        return reuse

    def attention_after(self, ctx: ForwardContext, site: AttentionSite, sample: torch.Tensor, out: Any) -> None:
        """Keep the latest output (the cache always holds it, as in diffusers)."""
        if isinstance(out, torch.Tensor) and covers_batch(ctx, out) and self.config.kind_active(site.kind):
            self.outputs.put((site.key, tuple(sample.shape[1:])), ctx.chunks, out)

    def cache_bytes(self) -> int:
        """Bytes of cached attention outputs held now."""
        return self.outputs.nbytes()

    def close(self, run: Any) -> None:
        """Free every cached tensor."""
        self.branches.clear()
        self.outputs.clear()


def place(config: PyramidAttentionBroadcastConfig, family: Family) -> Placement:
    """The attention sites of the kinds that are on."""
    if ATTENTION not in family.sites:
        return family.reason(ATTENTION)
    kinds = config.active_kinds or config.hooked_kinds
    if kinds and not attention_sites(family, kinds):
        return f"it has no {' or '.join(sorted(kinds))} attention"
    return frozenset({ATTENTION})


PYRAMID_ATTENTION_BROADCAST_SPEC = MethodSpec(
    name=METHOD,
    key="cachekit_pyramid_attention_broadcast",
    config_type=PyramidAttentionBroadcastConfig,
    place=place,
    start=lambda config, run: PyramidAttentionBroadcastRun(config),
    attention_kinds=lambda config: config.hooked_kinds,
)
