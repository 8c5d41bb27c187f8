"""The segmented block stack's pure parts: segments, the join order read off the model, replay."""
import pytest
import torch

from cachekit.cache_core.families.table import BlockList, family_named
from cachekit.cache_core.runtime.block_stack import StackLayout, StackShapeMismatch, replay_residual, segments, stack_positions

DOUBLE, SINGLE = family_named("HunyuanVideo").block_lists


class Method:
    def __init__(self, front, back):
        self.front_blocks, self.back_blocks = front, back


def test_segments():
    assert segments(Method(1, 0), 10) == (1, 9)
    assert segments(Method(0, 0), 10) == (0, 9)
    assert segments(Method(2, 3), 10) == (2, 6)


def test_positions_run_over_every_list_in_model_order():
    positions = stack_positions(family_named("Flux"), {"double_blocks": 2, "single_blocks": 3})
    assert [(p.block_list.attr, p.index, p.position) for p in positions] == [
        ("double_blocks", 0, 0), ("double_blocks", 1, 1), ("single_blocks", 0, 2), ("single_blocks", 1, 3), ("single_blocks", 2, 4)]
    assert positions[2].list_start and positions[2].previous_list.attr == "double_blocks"


@pytest.mark.parametrize("order", [("txt", "img"), ("img", "txt")])
def test_the_join_order_is_read_off_the_model_whatever_the_table_declares(order):
    """ComfyUI 0.3.6x joins HunyuanVideo's streams as (img, txt), 0.33 as (txt, img)."""
    layout = StackLayout(family_named("HunyuanVideo"), {"double_blocks": 1, "single_blocks": 1})
    streams = {"img": torch.randn(1, 5, 4), "txt": torch.randn(1, 3, 4)}
    assert layout.needs_check(DOUBLE, SINGLE)
    layout.check(DOUBLE, SINGLE, streams, torch.cat([streams[name] for name in order], dim=1))
    assert layout.join == order and not layout.needs_check(DOUBLE, SINGLE)
    joined = layout.convert(streams, DOUBLE, SINGLE)["img"]
    assert torch.equal(joined, torch.cat([streams[name] for name in order], dim=1))


def test_a_join_that_matches_no_order_is_refused():
    layout = StackLayout(family_named("HunyuanVideo"), {"double_blocks": 1, "single_blocks": 1})
    streams = {"img": torch.randn(1, 5, 4), "txt": torch.randn(1, 3, 4)}
    layout.check(DOUBLE, SINGLE, streams, torch.randn(1, 8, 4))
    assert layout.failed and layout.convert(streams, DOUBLE, SINGLE) is None


def test_replay_adds_the_residual_to_every_stream_and_refuses_a_stale_shape():
    block_list = BlockList("blocks", "double_block", ("img", "txt"))
    args = {"img": torch.ones(1, 2), "txt": torch.ones(1, 3)}
    out = replay_residual(args, {"img": torch.full((1, 2), 2.0)}, block_list)
    assert out["img"].tolist() == [[3.0, 3.0]] and out["txt"] is args["txt"]
    with pytest.raises(StackShapeMismatch):
        replay_residual(args, {"img": torch.ones(1, 4)}, block_list)
    tuple_stream = BlockList("blocks", "double_block", ("img",))
    av = replay_residual({"img": (torch.ones(1, 2), torch.zeros(1, 3))}, {"img": (torch.ones(1, 2), torch.ones(1, 3))}, tuple_stream)
    assert isinstance(av["img"], tuple) and av["img"][1].tolist() == [[1.0, 1.0, 1.0]]  # LTX-2's (video, audio)
