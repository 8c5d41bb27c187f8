"""Per-branch storage: cached tensors of every conditioning branch, split and joined by the runtime.

ComfyUI runs the branches of one model evaluation batched (uncond and cond rows in one forward) or
split (one forward per branch), and may change between the two within a run. `BatchStore` keeps
what a forward computed for its whole batch once, and hands back the value for any later batch of
the same branches: the stored tensor itself when the rows line up (no copy), else each branch's
rows joined. Values are tensor trees (runtime/trees.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, Hashable, Iterator, Optional, Sequence, TypeVar

import torch

from . import trees
from .forward import Chunk

S = TypeVar("S")


@dataclass
class _Record:
    value: trees.Tree
    uuids: tuple[Hashable, ...]
    rows: tuple[slice, ...]


class BatchStore:
    """Tensor trees by (name, branch), stored per computed batch and served per requested batch."""

    def __init__(self) -> None:
        self._latest: dict[tuple[Hashable, Hashable], tuple[_Record, int]] = {}

    def put(self, name: Hashable, chunks: Sequence[Chunk], value: trees.Tree) -> None:
        """Keep `value` (whole-batch rows in `chunks` order) as the newest `name` of each branch."""
        record = _Record(value, tuple(c.uuid for c in chunks), tuple(c.rows for c in chunks))
        for index, chunk in enumerate(chunks):
            self._latest[(name, chunk.uuid)] = (record, index)

    def get(self, name: Hashable, chunks: Sequence[Chunk], device: Optional[torch.device] = None) -> trees.Tree:
        """The newest `name` for the batch `chunks`, or None when a branch has none (or another row count)."""
        found = [self._latest.get((name, chunk.uuid)) for chunk in chunks]
        if any(entry is None or entry[0].rows[entry[1]].stop - entry[0].rows[entry[1]].start != chunk.size
               for entry, chunk in zip(found, chunks)):
            return None
        first = found[0][0]
        if all(entry[0] is first and entry[1] == i for i, entry in enumerate(found)) and len(first.uuids) == len(chunks):
            value = first.value  # the same batch as stored: no copy
        else:
            value = trees.cat_rows([trees.rows(rec.value, rec.rows[i].start, rec.rows[i].stop) for rec, i in found])
        return trees.to_device(value, device) if device is not None else value

    def has(self, name: Hashable, uuid: Hashable) -> bool:
        """Whether branch `uuid` has a stored `name`."""
        return (name, uuid) in self._latest

    def nbytes(self) -> int:
        """Bytes held (each stored batch counted once)."""
        seen = {id(rec): rec for rec, _ in self._latest.values()}
        return sum(trees.nbytes(rec.value) for rec in seen.values())

    def clear(self) -> None:
        """Drop everything."""
        self._latest.clear()


class BranchStore(Generic[S]):
    """One state object per conditioning branch for the length of one sampling run."""

    def __init__(self, factory: Callable[[], S]) -> None:
        self._factory = factory
        self._states: dict[Hashable, S] = {}

    def get(self, uuid: Hashable) -> S:
        """The state of branch `uuid`, created empty on first use."""
        state = self._states.get(uuid)
        if state is None:
            state = self._states[uuid] = self._factory()
        return state

    def find(self, uuid: Hashable) -> Optional[S]:
        """The state of branch `uuid`, or None when that branch has none yet."""
        return self._states.get(uuid)

    def __iter__(self) -> Iterator[S]:
        return iter(self._states.values())

    def __len__(self) -> int:
        return len(self._states)

    def nbytes(self) -> int:
        """Bytes held by the tensors in every branch's state."""
        return sum(trees.nbytes(vars(state)) for state in self._states.values())

    def clear(self) -> None:
        """Drop every branch's state (and the tensors it holds)."""
        self._states.clear()





class ReplayCache:
    """What methods that replay their last computed values share: the stack middle's residual and
    the model output, per branch, served for any later batch of the same branches."""

    def __init__(self) -> None:
        self.store = BatchStore()

    def middle(self, ctx) -> trees.Tree:
        """The stored middle residual for this forward's batch (None when a branch has none)."""
        return self.store.get("middle", ctx.chunks, ctx.device)

    def output(self, ctx, x: trees.Tree) -> trees.Tree:
        """A copy of the stored model output for this forward's batch (None when a branch has none);
        a copy, since model code may change its output in place (MiniMax rewrites its audio part)."""
        value = self.store.get("output", ctx.chunks, ctx.device)
        return trees.clone(value) if value is not None else None

    def keep(self, ctx, name: str, value: trees.Tree) -> None:
        """Store `value` (whole batch) as the newest `name` of this forward's branches."""
        self.store.put(name, ctx.chunks, value)

    def cache_bytes(self) -> int:
        """Bytes of cached tensors held now."""
        return self.store.nbytes()

    def close(self, run) -> None:
        """Free every cached tensor."""
        self.store.clear()
tensor_bytes = trees.nbytes
