"""Reaching a model's attention computations through ComfyUI patches, for attention caches (PAB, FasterCache).

Two hooks, chosen per family by its attention sites in the family table:
- `AttentionForwardPatch`: an object patch on an attention module's `forward` (Wan, LTXV). The
  module's own forward runs unchanged when it is computed; a reuse skips the whole module.
- `AttentionBlockHook`: a `patches_replace["dit"]` entry per block (Flux, Chroma, HunyuanVideo)
  that runs the block with an `optimized_attention_override` naming that block, so the attention
  kernels inside it reach the cache; a reuse skips only the kernel.

Both are stateless callables: they find the forward's context in the call's transformer_options and
ask the run's method (an `AttentionPolicy`) for a reused output before computing, and show it the
computed output after. Outside a CacheKit run they only call through. The asking and showing are
host-side and excluded from torch.compile; the attention itself stays compilable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Optional, Protocol

import torch

from ..families.attention_sites import BLOCK_KERNEL, FORWARD_KERNEL, MODULE_FORWARD, attention_sites
from ..families.table import Family
from .branches import BranchStore
from .forward import Chunk, ForwardContext, forward_context

SiteKey = tuple[Hashable, ...]


@dataclass(frozen=True)
class AttentionSite:
    """One attention computation of the model: a stable key (block list, block index, module or
    call number) and its kind (spatial, temporal, cross)."""

    key: SiteKey
    kind: str


class AttentionPolicy(Protocol):
    """The decision rule of an attention cache, implemented by the method's per-run state."""

    def attention_before(self, ctx: ForwardContext, site: AttentionSite, sample: torch.Tensor) -> Optional[torch.Tensor]:
        """The output of `site` made from the cache for this forward's batch, or None to compute.

        `sample` is the first input tensor of the attention (batch on dim 0, rows as in `ctx.chunks`).
        """

    def attention_after(self, ctx: ForwardContext, site: AttentionSite, sample: torch.Tensor, out: Any) -> None:
        """See the computed output of `site`."""


@torch.compiler.disable
def _ask(key: str, options: Any, site: AttentionSite, sample: Any) -> tuple[Optional[torch.Tensor], Optional[ForwardContext]]:
    ctx = forward_context(options, key)
    if ctx is None or not isinstance(sample, torch.Tensor):
        return None, None
    ctx.scratch["attention_reached"] = True
    if not ctx.caching:
        ctx.count(computed=True)
        return None, None
    with ctx.run.lock:
        reused = ctx.run.state.attention_before(ctx, site, sample)
    if reused is not None:
        return reused, None
    return None, ctx


@torch.compiler.disable
def _show(ctx: ForwardContext, site: AttentionSite, sample: torch.Tensor, out: Any) -> None:
    with ctx.run.lock:
        ctx.run.state.attention_after(ctx, site, sample, out)


def _attend(key: str, options: Any, site: AttentionSite, sample: Any, compute: Callable[[], Any]) -> Any:
    reused, ctx = _ask(key, options, site, sample)
    if reused is not None:
        return reused
    out = compute()
    if ctx is not None:
        _show(ctx, site, sample, out)
    return out


@dataclass(frozen=True)
class AttentionForwardPatch:
    """Object patch for `<attention module>.forward`; `inner` is the forward it replaces."""

    key: str
    site: AttentionSite
    inner: Callable[..., Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        sample = args[0] if args else None
        return _attend(self.key, kwargs.get("transformer_options"), self.site, sample, lambda: self.inner(*args, **kwargs))


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
        if forward_context(options, self.key) is None:
            return compute(args)
        override = KernelOverride(self.key, self.block, self.kind, options, options.get("optimized_attention_override"))
        return compute({**args, "transformer_options": {**options, "optimized_attention_override": override}})


@dataclass
class KernelOverride:
    """`optimized_attention_override` for the attention kernels of one block call.

    Lives only for that call; counts the kernel calls so each gets its own site. `previous` is an
    override that was already set (another pack's attention backend), called to compute.
    """

    key: str
    block: SiteKey
    kind: str
    options: dict
    previous: Optional[Callable[..., Any]] = None
    calls: int = 0

    def __call__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        site = AttentionSite((*self.block, self.calls), self.kind)
        self.calls += 1
        if self.previous is not None:
            compute = lambda: self.previous(func, *args, **kwargs)  # noqa: E731
        else:
            compute = lambda: func(*args, **kwargs)  # noqa: E731
        return _attend(self.key, self.options, site, args[0] if args else None, compute)


def install_attention_hooks(patched: Any, family: Family, key: str, kinds: frozenset[str]) -> int:
    """Hook every attention site of `family` whose kind is in `kinds`; returns the number of sites per forward.

    Hooks installed earlier under the same key are taken out of the chain first (the node applied
    twice keeps its last settings, never two hooks); patches from other nodes are chained.
    """
    from .install import existing_block_patch, strip_key

    count = 0
    for sites in attention_sites(family, kinds):
        if sites.via == FORWARD_KERNEL:
            continue  # installed per forward (forward_attention_override)
        blocks = len(patched.get_model_object(f"diffusion_model.{sites.block_list}"))
        for index in range(blocks):
            if sites.via == MODULE_FORWARD:
                path = f"diffusion_model.{sites.block_list}.{index}.{sites.module}.forward"
                inner = strip_key(patched.get_model_object(path), key)
                site = AttentionSite((sites.block_list, index, sites.module), sites.kind)
                patched.add_object_patch(path, AttentionForwardPatch(key=key, site=site, inner=inner))
            elif sites.via == BLOCK_KERNEL:
                inner = strip_key(existing_block_patch(patched, sites.replace_name, index), key)
                hook = AttentionBlockHook(key=key, block=(sites.block_list, index), kind=sites.kind, inner=inner)
                patched.set_model_patch_replace(hook, "dit", sites.replace_name, index)
            count += 1
    return count


def forward_attention_override(family: Family, key: str, kinds: frozenset[str], options: dict) -> Optional[Any]:
    """For a FORWARD_KERNEL family: the override numbering every attention kernel call of one forward
    (`options` is the call's transformer_options, holding its context); None for other families."""
    sites = [s for s in attention_sites(family, kinds) if s.via == FORWARD_KERNEL]
    if not sites:
        return None
    return KernelOverride(key, ("forward",), sites[0].kind, options, options.get("optimized_attention_override"))


# --- per-branch bookkeeping shared by attention caches -------------------------------------------


@dataclass
class AttentionBranch:
    """One conditioning branch's progress: the model evaluations it took part in (the iteration
    of diffusers' rules), counted once per evaluation however many forwards it had."""

    evaluations: int = 0
    eval_key: Optional[Hashable] = None
    sites: dict[SiteKey, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BranchTurn:
    """A branch's part in the current forward: its rows, its state and its iteration (0-based)."""

    chunk: Chunk
    branch: AttentionBranch
    iteration: int


def branch_turns(ctx: ForwardContext, branches: BranchStore[AttentionBranch]) -> tuple[BranchTurn, ...]:
    """Each chunk's branch and iteration in this forward (computed once per forward).

    A branch's iteration counts the model evaluations it took part in, so batched and split CFG
    count alike, and an evaluation split over several forwards counts once.
    """
    turns = ctx.scratch.get("attention_turns")
    if turns is None:
        items = []
        for chunk in ctx.chunks:
            branch = branches.get(chunk.uuid)
            if branch.eval_key != ctx.evaluation:
                branch.eval_key = ctx.evaluation
                branch.evaluations += 1
            items.append(BranchTurn(chunk, branch, branch.evaluations - 1))
        turns = ctx.scratch["attention_turns"] = tuple(items)
    return turns


def covers_batch(ctx: ForwardContext, sample: torch.Tensor) -> bool:
    """Whether `sample`'s rows are the forward's chunk rows (so rows can be split per branch): a batch
    on dim 0, or any layout when the forward has one branch (MiniMax packs its stream without a
    batch axis)."""
    return len(ctx.chunks) == 1 or sample.shape[0] == ctx.batch


def attention_reached(ctx: ForwardContext) -> bool:
    """Whether any attention hook of this cache saw the forward's context."""
    return bool(ctx.scratch.get("attention_reached"))
