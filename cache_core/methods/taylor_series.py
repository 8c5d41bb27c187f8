"""Extrapolating a tensor-valued function of the schedule position from its last computed values.

Plain torch. A `TaylorSeries` keeps up to max_order + 1 factors and the positions ("nodes") of
the values they came from; a prediction is a weighted sum of the factors with host-float weights.

Two expansions:
- "newton" (default): factor k is the divided difference f[n0, .., nk] over the k + 1 newest
  nodes, and the prediction at t is sum_k factor_k * prod_{i<k} (t - n_i). It reproduces every
  polynomial of degree <= max_order exactly, whatever the spacing of the nodes (a TaylorSeer run
  computes steps 0, 1, 2, 4, 9, 14, ...; multi-evaluation samplers add fractional positions).
- "diffusers": diffusers' `TaylorSeerState` recursion, factor_{k+1} = (factor_k - previous
  factor_k) / (t - n0) and prediction sum_k factor_k * (t - n0)^k / k!. Kept for parity tests.
For max_order <= 1 the two are the same formula.

Dtypes: factors are stored in the factor dtype (order 0 included, as in diffusers); differences
are taken between the new value at full precision and the stored previous factors, and
predictions are summed, in the wider of the value's and the factor dtype, then returned in the
value's dtype.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

EXPANSIONS = ("newton", "diffusers")
SAME_POSITION = 1e-6  # positions closer than this are the same point of the schedule


def _weights(expansion: str, position: float, nodes: Sequence[float], count: int) -> list[float]:
    """Weights of the first `count` factors in the prediction at `position` (host floats)."""
    if expansion == "diffusers":
        offset = position - nodes[0]
        return [offset**k / math.factorial(k) for k in range(count)]
    weights, product = [1.0], 1.0
    for k in range(1, count):
        product *= position - nodes[k - 1]
        weights.append(product)
    return weights


class TaylorSeries:
    """Extrapolates one tensor-valued function of the schedule position from its computed values.

    factors[k] is the k-th order factor and nodes[k] the position of the k-th newest computed
    value (newest first). Newton form: factors are divided differences f[n0, .., nk] and the
    prediction is sum_k factors[k] * prod_{i<k}(t - n_i).
    """

    def __init__(self, max_order: int, factor_dtype: torch.dtype, expansion: str = "newton") -> None:
        self.max_order = max_order
        self.factor_dtype = factor_dtype
        self.expansion = expansion
        self.factors: list[torch.Tensor] = []
        self.nodes: list[float] = []
        self.value_dtype: torch.dtype | None = None

    def update(self, value: torch.Tensor, position: float, copy: bool = True) -> None:
        """Add a computed value at `position`. copy=False lets order 0 share `value`'s storage
        (when the caller hands over a tensor nobody else will change)."""
        work = torch.promote_types(value.dtype, self.factor_dtype)
        previous, previous_nodes = self.factors, self.nodes
        if previous and previous[0].shape != value.shape:
            previous, previous_nodes = [], []  # the value changed shape: restart at order 0
        if previous and abs(position - previous_nodes[0]) < SAME_POSITION:
            self.factors = [value.to(self.factor_dtype, copy=copy), *previous[1:]]
            self.value_dtype = value.dtype
            return
        new = [value.to(work)]
        for k in range(1, min(self.max_order, len(previous)) + 1):
            spacing = position - (previous_nodes[0] if self.expansion == "diffusers" else previous_nodes[k - 1])
            new.append((new[k - 1] - previous[k - 1]) / spacing)
        new[0] = value.to(self.factor_dtype, copy=copy)
        self.factors = [new[0], *(factor.to(self.factor_dtype) for factor in new[1:])]
        self.nodes = [position, *previous_nodes][: len(self.factors)]
        self.value_dtype = value.dtype

    def predict(self, position: float) -> torch.Tensor:
        """The extrapolated value at `position`, in the dtype of the computed values (a new tensor)."""
        if not self.factors:
            raise RuntimeError("TaylorSeries.predict before any update")
        work = torch.promote_types(self.value_dtype, self.factor_dtype)
        weights = _weights(self.expansion, position, self.nodes, len(self.factors))
        out = self.factors[0].to(work, copy=True)
        for weight, factor in zip(weights[1:], self.factors[1:]):
            out.add_(factor, alpha=weight)
        return out.to(self.value_dtype)

    @property
    def shape(self) -> torch.Size | None:
        """Shape of the predicted values, None before the first update."""
        return self.factors[0].shape if self.factors else None

    def nbytes(self) -> int:
        """Bytes held by the factors."""
        return sum(f.numel() * f.element_size() for f in self.factors)
