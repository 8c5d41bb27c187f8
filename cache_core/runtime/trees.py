"""Tensor trees: a stream value is a tensor, or a tuple / list of tensors (LTX-2's (video, audio));
a set of streams is a dict of those.

Every helper maps over the leaves and keeps the container type, so block payloads of every family
go through the same code. Leaves that are None stay None.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

Tree = Any  # torch.Tensor | tuple[Tree, ...] | list[Tree] | None


def tree_map(fn: Callable[..., Any], tree: Tree, *others: Tree) -> Tree:
    """`fn` applied leaf by leaf to `tree` and the matching leaves of `others`."""
    if isinstance(tree, torch.Tensor):
        return fn(tree, *others)
    if isinstance(tree, dict):
        return {k: tree_map(fn, v, *(other[k] for other in others)) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        mapped = [tree_map(fn, leaf, *(other[i] for other in others)) for i, leaf in enumerate(tree)]
        return type(tree)(mapped)
    return tree


def leaves(tree: Tree) -> list[torch.Tensor]:
    """The tensors of a tree, in order."""
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, dict):
        return [leaf for item in tree.values() for leaf in leaves(item)]
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in leaves(item)]
    return []


def first_leaf(tree: Tree) -> torch.Tensor | None:
    """The first tensor of a tree, or None."""
    found = leaves(tree)
    return found[0] if found else None


def same_structure(a: Tree, b: Tree) -> bool:
    """Whether two trees have the same containers and leaf shapes."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_structure(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same_structure(x, y) for x, y in zip(a, b))
    return a is None and b is None


def clone(tree: Tree) -> Tree:
    """A copy of every leaf (values blocks may later change in place)."""
    return tree_map(lambda t: t.detach().clone(), tree)


def subtract(a: Tree, b: Tree) -> Tree:
    """a - b leaf by leaf."""
    return tree_map(lambda x, y: x - y, a, b)


def add(a: Tree, b: Tree) -> Tree:
    """a + b leaf by leaf, in a's dtype (b moved to a's device when it lives elsewhere)."""
    return tree_map(lambda x, y: x + y.to(device=x.device, dtype=x.dtype), a, b)


def rows(tree: Tree, start: int, stop: int) -> Tree:
    """Rows start:stop of every leaf (views)."""
    return tree_map(lambda t: t[start:stop], tree)


def cat_rows(parts: Sequence[Tree]) -> Tree:
    """The parts joined along the batch (dim 0), leaf by leaf; a single part is returned as is."""
    if len(parts) == 1:
        return parts[0]
    return tree_map(lambda *ts: torch.cat(ts, dim=0), parts[0], *parts[1:])


def to_device(tree: Tree, device: torch.device) -> Tree:
    """The tree on `device` (no copy for leaves already there)."""
    return tree_map(lambda t: t if t.device == device else t.to(device, non_blocking=True), tree)


def batch_size(tree: Tree) -> int | None:
    """Size of dim 0 of the first leaf."""
    leaf = first_leaf(tree)
    return int(leaf.shape[0]) if leaf is not None and leaf.dim() > 0 else None


def nbytes(value: object) -> int:
    """Bytes of all tensors reachable through dicts, lists and tuples in `value`."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    return 0
