"""Skipping a model's block stack and replaying its cached residual, through ComfyUI block patches.

Every block of the family's block lists gets a `patches_replace["dit"]` hook. Within a forward
the first block (the head) asks the method whether the rest of the stack may be skipped; if so
the blocks after it return their inputs unchanged and the last block (the tail) returns its input
plus the residual the stack added when it last ran. Nothing of the model is copied or changed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch

from ..families.table import BlockList, Family
from .forward import ForwardContext, rows

Streams = dict[str, torch.Tensor]
BlockFn = Callable[[dict[str, Any]], Streams]


class StackPolicy(Protocol):
    """The decision rule of a block-stack cache (FirstBlockCache, MagCache).

    residual_from_head_input: True when the cached residual spans the head too (MagCache decides
    before the head runs); False when it starts at the head's output (FirstBlockCache decides
    after the head ran, from the head's own residual).
    """

    residual_from_head_input: bool

    def skip_before_head(self, ctx: ForwardContext) -> Streams | None:
        """Before the head runs: the residual to replay at the tail to skip the whole stack, or None."""

    def skip_after_head(self, ctx: ForwardContext, head_in: Streams, head_out: Streams) -> Streams | None:
        """After the head ran: the residual to replay at the tail to skip the rest, or None to compute.

        `head_in` holds a snapshot of the head's main (image) stream input; blocks may update
        their inputs in place, so the live tensors can no longer be trusted.
        """

    def store_stack_residual(self, ctx: ForwardContext, residual: Streams) -> None:
        """After a full computation: the residual the stack added, per stream in the tail's layout."""


@dataclass
class StackState:
    """Per-forward state of the stack walk, kept in `ForwardContext.scratch`."""

    replay: Streams | None = None
    segment_start: Streams | None = None
    replayed: bool = False


@dataclass
class StackBlockHook:
    """The `patches_replace` entry of one block: a stateless callable (safe to deep-copy).

    key: transformer_options key of the run state; position/length: place in the stack;
    inner: a replace patch that was installed on this block before CacheKit's (kept working).
    """

    key: str
    family: Family
    block_list: BlockList
    position: int
    length: int
    inner: Callable[..., Streams] | None = None

    @property
    def is_head(self) -> bool:
        return self.position == 0

    @property
    def is_tail(self) -> bool:
        return self.position == self.length - 1

    def __call__(self, args: dict[str, Any], extra: dict[str, Any]) -> Streams:
        original: BlockFn = extra["original_block"]
        compute: BlockFn = (lambda a: self.inner(a, extra)) if self.inner is not None else original
        options = args.get("transformer_options") or {}
        run = options.get(self.key)
        ctx = getattr(run, "current", None)
        if ctx is None:
            return compute(args)
        return walk_block(self, run.method, ctx, args, compute)


def walk_block(hook: StackBlockHook, policy: StackPolicy, ctx: ForwardContext, args: dict[str, Any], compute: BlockFn) -> Streams:
    """Run, skip or replay one block of the stack for the current forward."""
    ctx.blocks_total += 1
    state: StackState = ctx.scratch.setdefault("stack", StackState())
    if hook.is_head and ctx.may_cache:
        state.replay = policy.skip_before_head(ctx)
    if state.replay is not None:
        if hook.is_tail:
            state.replayed = True
            return replay_residual(args, state.replay, hook.block_list)
        return {name: args[name] for name in hook.block_list.outputs}

    ctx.blocks_computed += 1
    if not (hook.is_head and ctx.may_cache):
        out = compute(args)
    elif policy.residual_from_head_input:
        state.segment_start = to_tail_layout(hook.family, hook.block_list, args)
        out = compute(args)
    else:
        main_stream = hook.block_list.outputs[0]
        head_in = {main_stream: args[main_stream].clone()}
        out = compute(args)
        if not hook.is_tail:
            state.replay = policy.skip_after_head(ctx, head_in, out)
            if state.replay is None:
                state.segment_start = to_tail_layout(hook.family, hook.block_list, out)
    if hook.is_tail and state.segment_start is not None:
        policy.store_stack_residual(ctx, {k: out[k] - v for k, v in state.segment_start.items() if out.get(k) is not None})
    return out


def replay_residual(args: dict[str, Any], replay: Streams, block_list: BlockList) -> Streams:
    """The tail's output on a skipped forward: its input plus the cached stack residual."""
    out = {}
    for name in block_list.outputs:
        value = args[name]
        residual = replay.get(name)
        if residual is None:
            out[name] = value
        elif residual.shape != value.shape:
            raise StackShapeMismatch(f"cached residual {tuple(residual.shape)} does not fit stream '{name}' {tuple(value.shape)}")
        else:
            out[name] = value + residual.to(value.dtype)
    return out


class StackShapeMismatch(RuntimeError):
    """A cached residual no longer fits the stream it should be added to."""


def to_tail_layout(family: Family, head_list: BlockList, streams: dict[str, Any]) -> Streams:
    """Snapshot the head's input or output in the layout of the tail's input (joined streams where needed)."""
    tail_list = family.block_lists[-1]
    if tail_list is not head_list and family.joint_order and len(tail_list.outputs) == 1:
        return {tail_list.outputs[0]: torch.cat([streams[name] for name in family.joint_order], dim=1)}
    return {name: streams[name].clone() for name in tail_list.outputs if name in streams}


def forward_was_consistent(ctx: ForwardContext) -> bool:
    """False when a forward decided to skip but never reached the tail to replay the residual."""
    state: StackState | None = ctx.scratch.get("stack")
    return state is None or state.replay is None or state.replayed


class HasStackResidual(Protocol):
    stack_residual: Streams | None


def assemble_replay(ctx: ForwardContext, branches: Any) -> Streams | None:
    """The batch's stack residual, joined from each chunk's branch cache; None if one is missing."""
    parts: list[Streams] = []
    for chunk in ctx.chunks:
        branch: HasStackResidual | None = branches.find(chunk.uuid)
        cached = branch.stack_residual if branch is not None else None
        if not cached or next(iter(cached.values())).shape[0] != chunk.rows.stop - chunk.rows.start:
            return None
        parts.append(cached)
    if len(parts) == 1:
        return dict(parts[0])
    return {name: torch.cat([part[name] for part in parts], dim=0) for name in parts[0]}


class ResidualCacheRun:
    """Shared part of block-stack caches: per-branch stack residuals in a BranchStore.

    Subclasses set `self.branches` to a BranchStore whose states have a `stack_residual` field.
    """

    branches: Any

    def store_stack_residual(self, ctx: ForwardContext, residual: Streams) -> None:
        """Keep each branch's share of the stack residual of a fully computed forward."""
        for chunk in ctx.chunks:
            self.branches.get(chunk.uuid).stack_residual = {name: rows(value, chunk) for name, value in residual.items()}

    def cache_bytes(self) -> int:
        """Bytes of cached tensors held now."""
        return self.branches.nbytes()

    def close(self) -> None:
        """Free every cached tensor."""
        self.branches.clear()
