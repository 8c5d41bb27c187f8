"""Per-branch state: one state object per conditioning uuid, created on first use."""
from __future__ import annotations

from typing import Callable, Generic, Hashable, Iterator, TypeVar

import torch

S = TypeVar("S")


class BranchStore(Generic[S]):
    """Holds one state object per conditioning branch for the length of one sampling run."""

    def __init__(self, factory: Callable[[], S]) -> None:
        self._factory = factory
        self._states: dict[Hashable, S] = {}

    def get(self, uuid: Hashable) -> S:
        """The state of branch `uuid`, created empty on first use."""
        state = self._states.get(uuid)
        if state is None:
            state = self._states[uuid] = self._factory()
        return state

    def find(self, uuid: Hashable) -> S | None:
        """The state of branch `uuid`, or None when that branch has none yet."""
        return self._states.get(uuid)

    def __iter__(self) -> Iterator[S]:
        return iter(self._states.values())

    def __len__(self) -> int:
        return len(self._states)

    def nbytes(self) -> int:
        """Bytes held by the tensors in every branch's state."""
        return sum(tensor_bytes(vars(state)) for state in self._states.values())

    def clear(self) -> None:
        """Drop every branch's state (and the tensors it holds)."""
        self._states.clear()


def tensor_bytes(value: object) -> int:
    """Bytes of all tensors reachable through dicts, lists and tuples in `value`."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v) for v in value)
    return 0
