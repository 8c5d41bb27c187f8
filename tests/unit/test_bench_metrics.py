"""The benchmark's metric code (bench/): Pareto fronts, reading them at a speedup, the block-work count, PSNR/SSIM."""
from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        yield {name: importlib.import_module(name) for name in ("pareto", "block_work", "image_metrics")}
    finally:
        sys.path.remove(str(BENCH))


def test_front_keeps_only_non_dominated_points(bench):
    front = bench["pareto"].front
    pts = [(1.0, 40.0), (1.5, 35.0), (1.4, 30.0), (2.0, 35.0), (3.0, 20.0), (2.5, 19.0), (3.0, 18.0)]
    assert front(pts) == [(1.0, 40.0), (2.0, 35.0), (3.0, 20.0)]
    assert front([]) == []


def test_quality_at_is_the_best_at_that_speedup_or_faster(bench):
    quality_at = bench["pareto"].quality_at
    pts = [(1.2, 40.0), (2.0, 30.0), (3.1, 25.0), (2.9, 28.0)]
    assert quality_at(pts, 1.5) == 30.0
    assert quality_at(pts, 2.0) == 30.0  # exactly reaching counts
    assert quality_at(pts, 3.0) == 25.0
    assert quality_at(pts, 4.0) is None


def test_margins_name_the_best_competitor(bench):
    margins = bench["pareto"].margins
    rows = margins([(2.0, 30.0), (3.0, 24.0)], {"a": [(2.5, 27.0)], "b": [(3.5, 26.0)]}, [2.0, 3.0, 4.0])
    assert [(r["best_name"], r["margin"]) for r in rows] == [("a", 3.0), ("b", -2.0), (None, None)]
    assert rows[2]["ours"] is None


def test_interpolate(bench):
    interpolate = bench["pareto"].interpolate
    assert interpolate([(1.0, 1.0), (3.0, 2.0)], 2.0) == pytest.approx(1.5)
    assert interpolate([(1.0, 1.0), (3.0, 2.0)], 3.5) is None


def test_block_work_counts_only_blocks_that_run(bench):
    bw = bench["block_work"]

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(8, 16)

        def forward(self, x):
            q = self.proj(x).view(x.shape[0], 1, x.shape[1], 16)
            return torch.nn.functional.scaled_dot_product_attention(q, q, q)

    blocks = torch.nn.ModuleList([Block(), Block()])
    outside = torch.nn.Linear(8, 8)
    x = torch.randn(2, 5, 8)
    with bw.count_block_work(blocks) as all_run:
        outside(x)
        blocks[0](x)
        blocks[1](x)
    with bw.count_block_work(blocks) as one_run:
        outside(x)
        blocks[1](x)
    per_block = 2 * 5 * 8 * 16 + 2.0 * (2 * 1 * 5) * 5 * 16  # linear on 10 rows, then q k^T and weights v
    assert all_run.macs == pytest.approx(2 * per_block)
    assert one_run.macs == pytest.approx(per_block)
    assert (all_run.block_calls, one_run.block_calls) == (2, 1)
    assert all_run.macs / one_run.macs == pytest.approx(2.0)


def test_psnr_and_ssim(bench):
    m = bench["image_metrics"]
    a = torch.rand(1, 3, 32, 32) * 2 - 1
    assert math.isinf(m.psnr(a, a))
    assert m.ssim(a, a) == pytest.approx(1.0)
    noisy = (a + 0.1 * torch.randn_like(a)).clamp(-1, 1)
    assert 15 < m.psnr(a, noisy) < 30
    assert m.ssim(a, noisy) < 1.0
