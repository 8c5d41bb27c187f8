"""Counting the transformer-block work a sampling run actually computed (the benchmark's ideal speedup).

One definition for every implementation (CacheKit, ComfyUI's EasyCache/LazyCache, diffusers' hooks,
cache-dit): the multiply-adds computed inside the model's transformer blocks, counted in an untimed
run with forward hooks on every nn.Linear inside a block, plus the attention kernels
(torch's scaled_dot_product_attention, q @ k^T and weights @ v; both ComfyUI and diffusers call it
here, and every attention of a Flux model is inside a block). A block that is not run contributes
nothing, a block run on half the batch contributes half, an attention kernel whose output is reused
contributes nothing while its projections still count. Predictor arithmetic (Taylor series, FoCa)
and the model's embedders and final layer are not block work. Ideal speedup = uncached block work /
this run's block work.
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import torch


class BlockWork:
    """Running totals of one counting run."""

    def __init__(self) -> None:
        self.linear_macs = 0.0
        self.attention_macs = 0.0
        self.block_calls = 0

    @property
    def macs(self) -> float:
        return self.linear_macs + self.attention_macs


def attention_macs(query: torch.Tensor, key: torch.Tensor) -> float:
    """Multiply-adds of softmax(q k^T) v for [..., Lq, D] queries and [..., Lk, D] keys (v's width = D)."""
    return 2.0 * query.shape[:-1].numel() * key.shape[-2] * query.shape[-1]


def linear_macs(layer: torch.nn.Linear, inputs: torch.Tensor) -> float:
    return inputs.numel() / layer.in_features * layer.in_features * layer.out_features


@contextlib.contextmanager
def count_block_work(blocks: Iterable[torch.nn.Module]) -> Iterator[BlockWork]:
    """Count the work of every call into `blocks` (and every attention kernel) while open."""
    from torch.overrides import TorchFunctionMode

    work = BlockWork()
    sdpa = torch.nn.functional.scaled_dot_product_attention

    class CountAttention(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is sdpa:
                query = args[0] if args else kwargs["query"]
                key = args[1] if len(args) > 1 else kwargs["key"]
                work.attention_macs += attention_macs(query, key)
            return func(*args, **kwargs)

    def on_linear(layer, inputs, _output):
        work.linear_macs += linear_macs(layer, inputs[0])

    def on_block(_block, _inputs, _output):
        work.block_calls += 1

    handles = []
    for block in blocks:
        handles.append(block.register_forward_hook(on_block))
        handles += [m.register_forward_hook(on_linear) for m in block.modules() if isinstance(m, torch.nn.Linear)]
    try:
        with CountAttention():
            yield work
    finally:
        for handle in handles:
            handle.remove()
