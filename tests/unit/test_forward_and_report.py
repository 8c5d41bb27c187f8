"""Chunk layout of batched CFG, branch storage and the run report."""
import torch

from cachekit.cache_core.runtime.branches import BranchStore, tensor_bytes
from cachekit.cache_core.runtime.forward import chunk_layout, rows
from cachekit.cache_core.runtime.report import COMPUTED, PARTIAL, REUSED, RunReport, format_bytes


def test_chunk_layout_follows_cond_or_uncond():
    chunks = chunk_layout(4, [1, 0], ["u", "c"])
    assert [(c.uuid, c.cond_index, c.rows) for c in chunks] == [("u", 1, slice(0, 2)), ("c", 0, slice(2, 4))]
    x = torch.arange(4)
    assert rows(x, chunks[1]).tolist() == [2, 3]


def test_chunk_layout_without_cfg_information_is_one_chunk():
    (chunk,) = chunk_layout(3, None, None)
    assert chunk.rows == slice(0, 3)


def test_branch_store_counts_bytes_and_clears():
    class State:
        def __init__(self):
            self.a = None
            self.b = {}

    store = BranchStore(State)
    store.get("x").a = torch.zeros(10, dtype=torch.float32)
    store.get("y").b = {"img": torch.zeros(4, dtype=torch.float16)}
    assert store.nbytes() == 48
    assert store.find("z") is None
    store.clear()
    assert len(store) == 0 and store.nbytes() == 0
    assert tensor_bytes([torch.zeros(2), (torch.zeros(1),)]) == 12


def test_report_classifies_steps_and_speedup():
    report = RunReport(method="FirstBlockCache", family="Flux", total_steps=4)
    report.record_forward(0, 4, 4)
    report.record_forward(1, 4, 1)
    report.record_forward(2, 4, 4)
    report.record_forward(2, 4, 1)
    report.note_cache_bytes(2048)
    assert report.step_status() == [COMPUTED, REUSED, PARTIAL, ""]
    assert report.steps_computed == 1 and report.steps_evaluated == 3
    assert abs(report.estimated_speedup - 16 / 10) < 1e-9
    line = report.summary()
    assert "computed 1/3 steps" in line and "10/16 blocks" in line and "2.0 KiB" in line
    assert report.to_dict()["steps"] == [COMPUTED, REUSED, PARTIAL, ""]
    assert format_bytes(3 * 1024 * 1024) == "3.0 MiB"
