"""Reaching a model's attention computations through ComfyUI patches, for attention caches (PAB, FasterCache).

Two hooks, chosen per family by its attention sites in the family table:
- `AttentionForwardPatch`: an object patch on an attention module's `forward` (Wan). The module's
  own forward runs unchanged when it is computed; a reuse skips the whole module.
- `AttentionBlockHook`: a `patches_replace["dit"]` entry per block (Flux, Chroma, HunyuanVideo)
  that runs the block with an `optimized_attention_override` naming that block, so the attention
  kernels inside it reach the cache; a reuse skips only the kernel.

Both are stateless callables: they find the sampling run at `transformer_options[key]` and ask its
method (an `AttentionPolicy`) to compute or reuse. Outside a CacheKit run they only call through.
Per-branch bookkeeping shared by attention caches (`AttentionBranch`, `branch_turns`) lives here too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Optional, Protocol

import torch

from ..families.attention_sites import BLOCK_KERNEL, MODULE_FORWARD, attention_sites
from ..families.table import Family
from .branches import BranchStore
from .forward import Chunk, ForwardContext

SiteKey = tuple[Hashable, ...]


@dataclass(frozen=True)
class AttentionSite:
    """One attention computation of the model: a stable key (block list, block index, module or
    call number) and its kind (spatial, temporal, cross)."""

    key: SiteKey
    kind: str


class AttentionPolicy(Protocol):
    """The decision rule of an attention cache, implemented by the method's per-run state."""

    def attend(self, ctx: ForwardContext, site: AttentionSite, compute: Callable[[], Any], sample: torch.Tensor) -> Any:
        """The attention output at `site` in this forward: `compute()` or one made from the cache.

        `sample` is the first input tensor of the attention (batch on dim 0, rows as in `ctx.chunks`).
        """


def _active_context(options: Any, key: str) -> tuple[Optional[AttentionPolicy], Optional[ForwardContext]]:
    run = options.get(key) if isinstance(options, dict) else None
    ctx = getattr(run, "current", None)
    if ctx is None:
        return None, None
    return run.method, ctx


@dataclass(frozen=True)
class AttentionForwardPatch:
    """Object patch for `<attention module>.forward`; `original` is the forward it replaces."""

    key: str
    site: AttentionSite
    original: Callable[..., Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        policy, ctx = _active_context(kwargs.get("transformer_options"), self.key)
        if ctx is None or not args or not isinstance(args[0], torch.Tensor):
            return self.original(*args, **kwargs)
        return policy.attend(ctx, self.site, lambda: self.original(*args, **kwargs), args[0])


@dataclass(frozen=True)
class AttentionBlockHook:
    """`patches_replace["dit"]` entry of one block whose attention is computed inline.

    inner: a replace patch installed on this block before this one (kept working).
    """

    key: str
    block: SiteKey
    kind: str
    inner: Optional[Callable[..., Any]] = None

    def __call__(self, args: dict[str, Any], extra: dict[str, Any]) -> Any:
        compute = (lambda a: self.inner(a, extra)) if self.inner is not None else extra["original_block"]
        options = args.get("transformer_options")
        policy, ctx = _active_context(options, self.key)
        if ctx is None:
            return compute(args)
        override = KernelOverride(policy, ctx, self.block, self.kind, options.get("optimized_attention_override"))
        return compute({**args, "transformer_options": {**options, "optimized_attention_override": override}})


@dataclass
class KernelOverride:
    """`optimized_attention_override` for the attention kernels of one block call.

    Lives only for that call; counts the kernel calls so each gets its own site. `previous` is an
    override that was already set (another pack's attention backend), called to compute.
    """

    policy: AttentionPolicy
    ctx: ForwardContext
    block: SiteKey
    kind: str
    previous: Optional[Callable[..., Any]] = None
    calls: int = 0

    def __call__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        site = AttentionSite((*self.block, self.calls), self.kind)
        self.calls += 1
        if self.previous is not None:
            compute = lambda: self.previous(func, *args, **kwargs)  # noqa: E731
        else:
            compute = lambda: func(*args, **kwargs)  # noqa: E731
        if not args or not isinstance(args[0], torch.Tensor):
            return compute()
        return self.policy.attend(self.ctx, site, compute, args[0])


def install_attention_hooks(patched: Any, family: Family, key: str, kinds: frozenset[str]) -> int:
    """Hook every attention site of `family` whose kind is in `kinds`; returns the number of sites per forward.

    Hooks installed earlier under the same key are replaced (the node applied twice keeps its last
    settings); patches from other nodes are chained.
    """
    count = 0
    for sites in attention_sites(family, kinds):
        blocks = len(patched.get_model_object(f"diffusion_model.{sites.block_list}"))
        for index in range(blocks):
            if sites.via == MODULE_FORWARD:
                _patch_module_forward(patched, key, sites.block_list, index, sites.module, sites.kind)
            elif sites.via == BLOCK_KERNEL:
                _patch_block_kernel(patched, key, sites.block_list, index, sites.replace_name, sites.kind)
            count += 1
    return count


def _patch_module_forward(patched: Any, key: str, block_list: str, index: int, module: str, kind: str) -> None:
    path = f"diffusion_model.{block_list}.{index}.{module}.forward"
    original = patched.get_model_object(path)
    if isinstance(original, AttentionForwardPatch) and original.key == key:
        original = original.original
    site = AttentionSite((block_list, index, module), kind)
    patched.add_object_patch(path, AttentionForwardPatch(key=key, site=site, original=original))


def _patch_block_kernel(patched: Any, key: str, block_list: str, index: int, replace_name: str, kind: str) -> None:
    existing = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
    inner = existing.get((replace_name, index))
    if isinstance(inner, AttentionBlockHook) and inner.key == key:
        inner = inner.inner
    hook = AttentionBlockHook(key=key, block=(block_list, index), kind=kind, inner=inner)
    patched.set_model_patch_replace(hook, "dit", replace_name, index)


# --- per-branch bookkeeping shared by attention caches -------------------------------------------


@dataclass
class AttentionBranch:
    """One conditioning branch's attention caches.

    evaluations: model evaluations this branch took part in (the iteration of diffusers' rules).
    sites: per site key, what the method caches (tuples of tensors and plain values).
    """

    evaluations: int = 0
    eval_key: Optional[Hashable] = None
    sites: dict[SiteKey, tuple] = field(default_factory=dict)


@dataclass(frozen=True)
class BranchTurn:
    """A branch's part in the current forward: its rows, its state and its iteration (0-based)."""

    chunk: Chunk
    branch: AttentionBranch
    iteration: int

    @property
    def rows(self) -> int:
        return self.chunk.rows.stop - self.chunk.rows.start


def branch_turns(ctx: ForwardContext, branches: BranchStore[AttentionBranch]) -> tuple[BranchTurn, ...]:
    """Each chunk's branch and iteration in this forward (computed once per forward).

    A branch's iteration counts the evaluations (step clock's (step, sigma) keys) it took part in,
    so batched and split CFG count alike, and an evaluation split over several forwards counts once.
    """
    turns = ctx.scratch.get("attention_turns")
    if turns is None:
        items = []
        for chunk in ctx.chunks:
            branch = branches.get(chunk.uuid)
            if branch.eval_key != ctx.eval_key:
                branch.eval_key = ctx.eval_key
                branch.evaluations += 1
            items.append(BranchTurn(chunk, branch, branch.evaluations - 1))
        turns = ctx.scratch["attention_turns"] = tuple(items)
    return turns


def covers_batch(ctx: ForwardContext, sample: torch.Tensor) -> bool:
    """Whether `sample`'s batch is exactly the forward's chunk rows (so rows can be split per branch)."""
    return sample.shape[0] == ctx.chunks[-1].rows.stop


def join_rows(parts: list[torch.Tensor]) -> torch.Tensor:
    """The batch made of each branch's rows, in chunk order (no copy for a single branch)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)


@dataclass
class EvaluationCounter:
    """Index of the current model evaluation within the run (0-based), from the forward's eval key."""

    index: int = -1
    _key: Optional[Hashable] = None

    def at(self, ctx: ForwardContext) -> int:
        if ctx.eval_key != self._key:
            self._key = ctx.eval_key
            self.index += 1
        return self.index
