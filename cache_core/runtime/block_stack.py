"""The segmented block stack: skipping the middle of a model's blocks and replaying (or predicting) it.

Every block of the family's block lists gets a `patches_replace["dit"]` hook; together they are one
stack of L blocks in model order, cut into three segments by the method:

    front: blocks [0, n)        always run; their residual may decide (FirstBlockCache: n = 1)
    middle: blocks [n, L - m)   computed, or reused: its residual replayed or predicted
    back: blocks [L - m, L)     always run, on the corrected middle output (cache-dit's Bn)

Within a forward, at the first middle block the method decides (once per model evaluation and
device, from the lead branch); on a reuse the middle blocks return their inputs unchanged and the
last middle block returns its input plus the middle's residual for this batch. On a computed
forward the middle's residual (last middle output minus first middle input, in the last block's
stream layout) is handed to the method. Streams may change layout inside the middle (Flux's
double blocks hand (txt, img) joined to the single blocks): the join order is read off the model on
the first computed forward of each run and checked against the family table.

Host-side work (decisions, storage, the walk's bookkeeping) happens in functions excluded from
torch.compile; the block computations themselves stay compilable.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Protocol

import torch

from ..families.table import OBJECT, REPLACE, BlockList, Family
from . import trees
from .forward import ForwardContext, forward_context

Streams = dict[str, Any]
BlockFn = Callable[[dict[str, Any]], Streams]

COMPUTE, PASS, OUTPUT_READY = 0, 1, 2


class StackMethod(Protocol):
    """What a block-stack method supplies (FirstBlockCache, MagCache, TaylorSeer blocks, ...)."""

    front_blocks: int  # n: always computed, before the decision
    back_blocks: int  # m: always computed, after the middle

    def decide(self, ctx: ForwardContext, lead_front: Optional[torch.Tensor]) -> bool:
        """Once per model evaluation (and device): True to reuse the middle.

        lead_front: the lead chunk's rows of the front's residual on the main stream (None when
        the method has no front blocks).
        """

    def middle(self, ctx: ForwardContext) -> Optional[Streams]:
        """On a reuse: the middle's residual for this forward's batch (replayed or predicted), per
        stream in the last middle block's layout; None to compute instead."""

    def learn(self, ctx: ForwardContext, front: Optional[torch.Tensor], middle: Streams) -> None:
        """After a computed middle: the front's residual (main stream, whole batch; None without
        front blocks) and the middle's residual per stream."""


class StackShapeMismatch(RuntimeError):
    """A cached residual no longer fits the stream it should be added to."""


@dataclass(frozen=True)
class StackPosition:
    """Where a block sits in the stack."""

    block_list: BlockList
    index: int
    position: int
    length: int
    list_start: bool  # first block of its list
    previous_list: Optional[BlockList] = None  # the list before this one (at a list start)


@dataclass
class StackWalk:
    """Per-forward state of the walk, in ForwardContext.scratch["stack"]."""

    reached: bool = False
    front_start: Optional[Streams] = None
    front_start_list: Optional[BlockList] = None
    front: Optional[torch.Tensor] = None
    middle_start: Optional[Streams] = None
    middle_start_list: Optional[BlockList] = None
    replay: Optional[Streams] = None
    replayed: bool = False
    boundary: dict[str, Streams] = field(default_factory=dict)


def segments(method: StackMethod, length: int) -> tuple[int, int]:
    """(first middle position, last middle position) of a stack of `length` blocks."""
    start = max(int(method.front_blocks), 0)
    end = length - max(int(method.back_blocks), 0) - 1
    return start, end


@dataclass(frozen=True)
class StackBlockHook:
    """The `patches_replace` entry of one block: a stateless callable (safe to copy).

    key: the cache's key (its forward context travels in transformer_options[key]); family: the
    family entry; at: the block's place in the stack; inner: a replace patch that was installed on
    this block before CacheKit's (kept working).
    """

    key: str
    family: Family
    at: StackPosition
    inner: Optional[Callable[..., Streams]] = None

    def __call__(self, args: dict[str, Any], extra: dict[str, Any]) -> Streams:
        original: BlockFn = extra["original_block"]
        compute: BlockFn = (lambda a: self.inner(a, extra)) if self.inner is not None else original
        action, payload = _before_block(self, args)
        if action != COMPUTE:
            return payload
        out = compute(args)
        return _after_block(self, args, out)


@dataclass(frozen=True)
class StackBlockPatch:
    """The object patch on one block module's `forward` (families without block patch points):
    the block's first argument is its stream, `transformer_options` comes as a keyword, and it
    returns the new stream. `inner` is the forward it replaces."""

    key: str
    family: Family
    at: StackPosition
    inner: Callable[..., Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args:
            return self.inner(*args, **kwargs)
        stream = self.at.block_list.outputs[0]
        payload = {stream: args[0], "transformer_options": kwargs.get("transformer_options")}
        action, result = _before_block(self, payload)
        if action != COMPUTE:
            return result[stream]
        out = self.inner(*args, **kwargs)
        return _after_block(self, payload, {stream: out})[stream]


@torch.compiler.disable
def _before_block(hook: Any, args: dict[str, Any]) -> tuple[int, Any]:
    ctx = forward_context(args.get("transformer_options"), hook.key)
    if ctx is None:
        return COMPUTE, None
    at = hook.at
    walk: StackWalk = ctx.scratch.setdefault("stack", StackWalk())
    walk.reached = True
    run = ctx.run
    method: StackMethod = run.state
    middle_start, middle_end = segments(method, at.length)
    if not ctx.caching or middle_start > middle_end:
        ctx.count(computed=True)
        return COMPUTE, None
    layout: StackLayout = run.layout
    if at.list_start and at.previous_list is not None and layout.needs_check(at.previous_list, at.block_list):
        layout.check(at.previous_list, at.block_list, walk.boundary.get(at.previous_list.attr), args[at.block_list.outputs[0]])
        if layout.failed:
            run.disable(f"{run.spec.family.name}: {layout.failed}")
    if at.position == 0 and middle_start > 0:
        walk.front_start = _snapshot(args, at.block_list)
        walk.front_start_list = at.block_list
    if at.position == middle_start:
        if walk.replay is None and not _decide(ctx, walk, method, args, at):
            walk.middle_start = _snapshot(args, at.block_list)
            walk.middle_start_list = at.block_list
    if walk.replay is not None and middle_start <= at.position <= middle_end:
        ctx.count(computed=False)
        if at.position == middle_end:
            walk.replayed = True
            return OUTPUT_READY, replay_residual(args, walk.replay, at.block_list)
        return PASS, {name: args[name] for name in at.block_list.outputs}
    ctx.count(computed=True)
    return COMPUTE, None


def _snapshot(args: dict[str, Any], block_list: BlockList) -> Streams:
    return {name: trees.clone(args[name]) for name in block_list.outputs if args.get(name) is not None}


def _decide(ctx: ForwardContext, walk: StackWalk, method: StackMethod, args: dict[str, Any], at: StackPosition) -> bool:
    """At the first middle block: the front's residual, the evaluation's decision and, on a reuse,
    the middle's residual for this batch (in walk.replay). Returns whether the middle is reused."""
    run = ctx.run
    main = at.block_list.outputs[0]
    front = None
    if walk.front_start is not None:
        start = run.layout.convert(walk.front_start, walk.front_start_list, at.block_list)
        value = start.get(main) if start else None
        if value is not None and trees.same_structure(args[main], value):
            front = trees.first_leaf(trees.subtract(args[main], value))  # LTX-2's (video, audio): the video part decides
        walk.front_start = None
    walk.front = front
    with run.lock:
        reuse = ctx.decisions.get("stack")
        if reuse is None:
            lead = front[ctx.lead.rows] if front is not None and len(ctx.chunks) > 1 else front
            reuse = bool(method.decide(ctx, lead))
            ctx.decisions["stack"] = reuse
        walk.replay = method.middle(ctx) if reuse else None
    return walk.replay is not None


@torch.compiler.disable
def _after_block(hook: Any, args: dict[str, Any], out: Streams) -> Streams:
    ctx = forward_context(args.get("transformer_options"), hook.key)
    if ctx is None or not ctx.caching:
        return out
    walk: StackWalk = ctx.scratch["stack"]
    at = hook.at
    run = ctx.run
    if at.index == _list_length(run, at) - 1:
        walk.boundary[at.block_list.attr] = out  # the next list starts from these streams
    middle_start, middle_end = segments(run.state, at.length)
    if at.position == middle_end and walk.middle_start is not None:
        start = run.layout.convert(walk.middle_start, walk.middle_start_list, at.block_list)
        if start is not None:
            residual = {name: trees.subtract(out[name], value) for name, value in start.items()
                        if out.get(name) is not None and trees.same_structure(out[name], value)}
            with run.lock:
                run.state.learn(ctx, walk.front, residual)
        walk.middle_start = None
    return out


def _list_length(run: Any, at: StackPosition) -> int:
    return run.layout.lengths[at.block_list.attr]


def replay_residual(args: dict[str, Any], replay: Streams, block_list: BlockList) -> Streams:
    """The last middle block's output on a reuse: its input plus the middle's residual."""
    out = {}
    for name in block_list.outputs:
        value = args.get(name)
        residual = replay.get(name)
        if residual is None or value is None:
            out[name] = value
        elif not trees.same_structure(residual, value):
            raise StackShapeMismatch(f"the cached residual does not fit stream '{name}' any more")
        else:
            out[name] = trees.add(value, residual)
    return out


def forward_was_consistent(ctx: ForwardContext) -> bool:
    """False when a forward decided to reuse but never reached the last middle block to replay."""
    walk: Optional[StackWalk] = ctx.scratch.get("stack")
    return walk is None or walk.replay is None or walk.replayed


def stack_reached(ctx: ForwardContext) -> bool:
    """Whether any block hook of this cache saw the forward's context."""
    walk: Optional[StackWalk] = ctx.scratch.get("stack")
    return walk is not None and walk.reached


class StackLayout:
    """The stack of one model as a run sees it: list lengths and the join order between lists.

    Joins are verified on the model itself: at the first block of a list with fewer streams than
    the previous one, its main stream must equal the previous list's streams concatenated on the
    token axis in the declared order (or, failing that, another order, which is then used).
    """

    def __init__(self, family: Family, lengths: dict[str, int]) -> None:
        self.family = family
        self.lengths = lengths
        self.join: Optional[tuple[str, ...]] = None
        self.failed: Optional[str] = None

    def needs_check(self, previous: BlockList, current: BlockList) -> bool:
        return self.join is None and self.failed is None and len(current.outputs) < len(previous.outputs)

    def check(self, previous: BlockList, current: BlockList, boundary: Optional[Streams], joined: Any) -> None:
        """Learn the join order from one computed forward (or note that it matches no order)."""
        if boundary is None or not isinstance(joined, torch.Tensor):
            return
        declared = tuple(self.family.joint_order) or previous.outputs
        candidates = [declared] + [order for order in (previous.outputs, tuple(reversed(previous.outputs))) if order != declared]
        for order in candidates:
            parts = [boundary.get(name) for name in order]
            if all(isinstance(p, torch.Tensor) for p in parts) and sum(p.shape[1] for p in parts) == joined.shape[1]:
                offset, equal = 0, True
                for part in parts:
                    equal = equal and torch.equal(joined[:, offset:offset + part.shape[1]], part)
                    offset += part.shape[1]
                if equal:
                    self.join = order
                    return
        self.failed = f"the {current.attr} input is not a join of the {previous.attr} streams"

    def convert(self, streams: Streams, source: BlockList, target: BlockList) -> Optional[Streams]:
        """`streams` (taken at a block of `source`) in the stream layout of `target`'s blocks."""
        if source is target or source.outputs == target.outputs:
            return streams
        if len(target.outputs) == 1 and self.join is not None:
            parts = [streams.get(name) for name in self.join]
            if all(isinstance(p, torch.Tensor) for p in parts):
                return {target.outputs[0]: torch.cat(parts, dim=1)}
        return None


def stack_positions(family: Family, lengths: dict[str, int]) -> list[StackPosition]:
    """Every block of the family's lists, in model order."""
    total = sum(lengths[bl.attr] for bl in family.block_lists)
    positions, position, previous = [], 0, None
    for block_list in family.block_lists:
        for index in range(lengths[block_list.attr]):
            positions.append(StackPosition(block_list, index, position, total, index == 0, previous if index == 0 else None))
            position += 1
        previous = block_list
    return positions


def install_stack_hooks(patched: Any, family: Family, key: str) -> int:
    """Put a StackBlockHook on every block of the family's lists; returns the stack's length.

    A hook of the same key already on a block (the node applied again, maybe through other nodes'
    patches) is taken out of the chain first, so hooks never nest.
    """
    from .install import existing_block_patch, strip_key

    lengths = block_list_lengths(patched, family)
    for at in stack_positions(family, lengths):
        if at.block_list.via == OBJECT:
            path = f"diffusion_model.{at.block_list.attr}.{at.index}.forward"
            inner = strip_key(patched.get_model_object(path), key)
            patched.add_object_patch(path, StackBlockPatch(key=key, family=family, at=at, inner=inner))
            continue
        inner = strip_key(existing_block_patch(patched, at.block_list.replace_name, at.index), key)
        hook = StackBlockHook(key=key, family=family, at=at, inner=inner)
        patched.set_model_patch_replace(hook, "dit", at.block_list.replace_name, at.index)
    return sum(lengths.values())


def block_list_lengths(model: Any, family: Family) -> dict[str, int]:
    """The number of blocks in each of the family's lists on this model."""
    return {bl.attr: len(model.get_model_object(f"diffusion_model.{bl.attr}")) for bl in family.block_lists}


def with_inner(hook: Any, inner: Any) -> Any:
    """A copy of a chained CacheKit hook with another inner patch."""
    return replace(hook, inner=inner)
