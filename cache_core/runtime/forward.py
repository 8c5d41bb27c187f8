"""What one call of the diffusion model is: its step, sigma and conditioning chunks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable

import torch


@dataclass(frozen=True)
class Chunk:
    """One conditioning branch inside a batched forward.

    uuid: the conditioning's uuid (stable for the whole run), the key of per-branch state.
    cond_index: its entry in `cond_or_uncond` (0 positive, 1 negative for CFGGuider).
    rows: the batch rows that belong to it.
    """

    uuid: Hashable
    cond_index: int
    rows: slice


@dataclass
class ForwardContext:
    """State of one diffusion-model forward, shared by the hooks that fire inside it.

    may_cache: caching is allowed in this forward at all (no ControlNet, hooks intact).
    in_window: skipping is allowed (may_cache, and the step is inside the start/end window).
    blocks_total / blocks_computed: the report's units (blocks, attention calls, ...) offered
    and actually computed in this forward.
    eval_key identifies the model evaluation (counter, sigma) this forward is part of: with split
    CFG one evaluation is several forwards, and they share `eval_state`, where the first one
    leaves its decision.
    """

    step: int
    sigma: float
    chunks: tuple[Chunk, ...]
    may_cache: bool
    in_window: bool
    eval_key: tuple[int, float]
    eval_state: dict[str, Any]
    scratch: dict[str, Any] = field(default_factory=dict)
    blocks_total: int = 0
    blocks_computed: int = 0
    aborted: bool = False

    @property
    def lead(self) -> Chunk:
        """The chunk whose metrics decide for the whole evaluation."""
        return self.chunks[0]


def chunk_layout(batch: int, cond_or_uncond: list[int] | None, uuids: list[Hashable] | None) -> tuple[Chunk, ...]:
    """Split a batch of `batch` rows into its conditioning chunks, as ComfyUI batched them."""
    if not cond_or_uncond:
        return (Chunk(uuid="single", cond_index=0, rows=slice(0, batch)),)
    n = len(cond_or_uncond)
    per = batch // n
    ids = list(uuids) if uuids and len(uuids) == n else [f"chunk{i}:{c}" for i, c in enumerate(cond_or_uncond)]
    return tuple(Chunk(uuid=ids[i], cond_index=int(cond_or_uncond[i]), rows=slice(i * per, (i + 1) * per)) for i in range(n))


def rows(tensor: torch.Tensor, chunk: Chunk) -> torch.Tensor:
    """The rows of `tensor` that belong to `chunk` (a view)."""
    return tensor[chunk.rows]
