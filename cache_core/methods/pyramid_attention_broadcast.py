"""Pyramid Attention Broadcast (PAB, arXiv 2408.12588): reuse attention outputs between evaluations.

Rule as in diffusers' `PyramidAttentionBroadcastHook`: an attention site is computed when it has no
cache, at iteration 0, outside its kind's timestep window, or every `block_skip_range`-th iteration;
otherwise its last output is returned unchanged. Unlike diffusers, the iteration and the cache are
per conditioning branch (uuid) and per site, and the iteration counts model evaluations (the step
clock's (step, sigma) keys), so the negative branch never receives the positive branch's attention
and batched and split CFG decide alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..families.attention_sites import CROSS, SPATIAL, TEMPORAL
from ..runtime.attention_hooks import AttentionBranch, AttentionSite, branch_turns, covers_batch, join_rows
from ..runtime.branches import BranchStore
from ..runtime.forward import ForwardContext
from .validation import check_percent_window

METHOD = "PyramidAttentionBroadcast"

# diffusers' (100, 800) timestep window, as schedule progress of an unshifted flow model (sigma = t / 1000 = 1 - progress).
DEFAULT_WINDOW = (0.2, 0.9)


def check_skip_range(name: str, value: int) -> None:
    """Raise ValueError unless `value` is a whole number >= 0 (0 = off)."""
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0 (0 turns it off), got {value!r}.")


def progress_in_window(progress: float, start_percent: float, end_percent: float) -> bool:
    """Whether schedule progress lies in [start_percent, end_percent) (ComfyUI's start/end convention)."""
    return start_percent <= progress < end_percent


@dataclass(frozen=True)
class PyramidAttentionBroadcastConfig:
    """Settings of the PAB node: per attention kind, a skip range (0 = never reuse) and a window of
    schedule progress (0 = first step, 1 = end) in which reuse may happen."""

    spatial_attention_block_skip_range: int = 2
    temporal_attention_block_skip_range: int = 0
    cross_attention_block_skip_range: int = 0
    spatial_attention_start_percent: float = DEFAULT_WINDOW[0]
    spatial_attention_end_percent: float = DEFAULT_WINDOW[1]
    temporal_attention_start_percent: float = DEFAULT_WINDOW[0]
    temporal_attention_end_percent: float = DEFAULT_WINDOW[1]
    cross_attention_start_percent: float = DEFAULT_WINDOW[0]
    cross_attention_end_percent: float = DEFAULT_WINDOW[1]

    def __post_init__(self) -> None:
        for kind in (SPATIAL, TEMPORAL, CROSS):
            name = f"{kind}_attention_block_skip_range"
            check_skip_range(name, getattr(self, name))
            start, end = self.window(kind)
            try:
                check_percent_window(start, end)
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
        return frozenset(kind for kind in (SPATIAL, TEMPORAL, CROSS) if self.kind_active(kind))

    @property
    def hooked_kinds(self) -> frozenset[str]:
        """The attention kinds to hook: every kind with a skip range (even with an empty window)."""
        return frozenset(kind for kind in (SPATIAL, TEMPORAL, CROSS) if self.skip_range(kind) > 1)

    @property
    def enabled(self) -> bool:
        """Whether this configuration can reuse anything at all."""
        return bool(self.active_kinds)


def should_compute(iteration: int, skip_range: int, in_window: bool, has_cache: bool) -> bool:
    """diffusers' PAB rule: compute unless cached, past iteration 0, in the window and off the skip beat."""
    return not has_cache or iteration == 0 or not in_window or skip_range <= 1 or iteration % skip_range == 0


class PyramidAttentionBroadcastRun:
    """PAB's state for one sampling run: per branch, the last output of each attention site.

    progress_of_sigma: maps an evaluation's sigma to schedule progress (the run's memoised map).
    """

    def __init__(self, config: PyramidAttentionBroadcastConfig, progress_of_sigma: Callable[[float], float]) -> None:
        self.config = config
        self.progress_of_sigma = progress_of_sigma
        self.branches: BranchStore[AttentionBranch] = BranchStore(AttentionBranch)

    def attend(self, ctx: ForwardContext, site: AttentionSite, compute: Callable[[], Any], sample: torch.Tensor) -> Any:
        """Return the cached output of `site` for every branch, or compute (and cache) it."""
        ctx.blocks_total += 1
        if not self.config.kind_active(site.kind) or not covers_batch(ctx, sample):
            ctx.blocks_computed += 1
            return compute()
        turns = branch_turns(ctx, self.branches)
        signature = tuple(sample.shape[1:])
        if ctx.may_cache:
            in_window = progress_in_window(self.progress_of_sigma(ctx.sigma), *self.config.window(site.kind))
            cached = [turn.branch.sites.get(site.key) for turn in turns]
            skip_range = self.config.skip_range(site.kind)
            if all(
                entry is not None and entry[0] == signature and entry[1].shape[0] == turn.rows
                and not should_compute(turn.iteration, skip_range, in_window, has_cache=True)
                for turn, entry in zip(turns, cached)
            ):
                return join_rows([entry[1] for entry in cached])
        ctx.blocks_computed += 1
        out = compute()
        if isinstance(out, torch.Tensor) and out.shape[0] == sample.shape[0]:
            for turn in turns:  # the cache always holds the latest output, as in diffusers
                turn.branch.sites[site.key] = (signature, out[turn.chunk.rows])
        return out

    def cache_bytes(self) -> int:
        """Bytes of cached attention outputs held now."""
        return self.branches.nbytes()

    def close(self) -> None:
        """Free every cached tensor."""
        self.branches.clear()
