"""The per-call forward context: what one diffusion-model forward is, travelling with the call.

The APPLY_MODEL wrapper (sampling_hooks.ForwardHook) opens a `ForwardContext` for every forward of
a sampling run and passes it down in that call's own `transformer_options` (a copy with the
context under the cache's key), so the block, attention and model-level hooks of that call, and
only of that call, see it. Concurrent forwards (ComfyUI's multi-GPU work units run in threads) each
carry their own context; nothing is read from a shared "current" slot.

A forward has a kind: BASELINE is the run's own model evaluating a conditioning branch for the
first time in a model evaluation; ALTERED is a forward whose model differs from the run's own
(Skip Layer Guidance replaces blocks, a guider adds patches); REPEAT is a further forward of a
branch already evaluated in the same model evaluation (a guider that re-runs the model). Only
BASELINE forwards store into or replay from a cache; the others compute everything.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, Optional

import torch

BASELINE, ALTERED, REPEAT = "baseline", "altered", "repeat"


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

    @property
    def size(self) -> int:
        return self.rows.stop - self.rows.start


@dataclass
class ForwardContext:
    """State of one diffusion-model forward, shared by the hooks that fire inside it.

    kind: BASELINE, ALTERED or REPEAT (see the module docstring).
    caching: this forward may store into and replay from caches (BASELINE, no ControlNet, run
        not disabled).
    in_window: reuse is allowed at this step (caching, and inside the start/end window).
    decisions: shared by the BASELINE forwards of one model evaluation on one device (split CFG
        runs one forward per branch; the first one decides for the evaluation).
    units_total / units_computed: the report's units offered and computed in this forward.
    scratch: per-forward working state of the hooks (the stack walk).
    """

    run: Any
    step: int
    sigma: float
    progress: float
    chunks: tuple[Chunk, ...]
    kind: str
    caching: bool
    in_window: bool
    evaluation: int
    device: Optional[torch.device]
    decisions: dict[str, Any]
    scratch: dict[str, Any] = field(default_factory=dict)
    units_total: int = 0
    units_computed: int = 0
    aborted: bool = False

    @property
    def lead(self) -> Chunk:
        """The chunk whose signal decides for the whole evaluation."""
        return self.chunks[0]

    @property
    def batch(self) -> int:
        return self.chunks[-1].rows.stop

    def count(self, computed: bool, units: int = 1) -> None:
        """Count `units` offered in this forward, computed or reused."""
        self.units_total += units
        if computed:
            self.units_computed += units


def chunk_layout(batch: int, cond_or_uncond: Optional[list[int]], uuids: Optional[list[Hashable]]) -> tuple[Chunk, ...]:
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


def forward_context(options: Any, key: str) -> Optional[ForwardContext]:
    """The context of cache `key` that travels in this call's transformer_options, if any."""
    if not isinstance(options, dict):
        return None
    ctx = options.get(key)
    return ctx if isinstance(ctx, ForwardContext) else None


def forward_signature(options: dict) -> tuple:
    """What makes a forward's model: the block replacements and the patches in its options.

    Entries are compared by identity (the same patch objects travel into every call), so a forward
    with blocks removed or replaced, or with patches added, has another signature.
    """
    replace = options.get("patches_replace") or {}
    patches = options.get("patches") or {}
    replaced = tuple(sorted((str(name), tuple(sorted((repr(k), id(v)) for k, v in (entries or {}).items())))
                            for name, entries in replace.items()))
    patched = tuple(sorted((str(name), tuple(id(p) for p in (entries or ()))) for name, entries in patches.items()))
    return replaced, patched
