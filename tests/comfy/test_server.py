"""CacheKit in a real headless ComfyUI server: it loads, lists its nodes, and runs the example workflows."""
from __future__ import annotations

import pytest

from harness.server import ComfyServer
from harness.tiny_models import write_checkpoint
from harness.tiny_workflows import tiny_wan_prompt

NODE_IDS = [
    "CacheKitFirstBlockCache", "CacheKitPyramidAttentionBroadcast", "CacheKitFasterCache", "CacheKitTaylorSeerCache",
    "CacheKitMagCache", "CacheKitMagCacheCalibrate",
]


def combo_options(spec: list) -> list:
    """A combo input's options in /object_info (V3 nodes use ["COMBO", {"options": [...]}])."""
    return spec[1]["options"] if spec[0] == "COMBO" else spec[0]


@pytest.fixture(scope="module")
def server():
    srv = ComfyServer()
    write_checkpoint("wan21", srv.models / "diffusion_models" / "tiny_wan21.safetensors")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def test_pack_loads_without_import_errors(server):
    ours = [line for line in server.log_text().splitlines() if "comfyui-cachekit" in line or "cachekit_test_nodes" in line]
    assert ours, "the packs were not loaded"
    assert not [line for line in ours if "IMPORT FAILED" in line or "Cannot import" in line], ours


def test_object_info_lists_the_nodes_with_their_inputs(server):
    info = server.object_info()
    for node_id in NODE_IDS:
        assert node_id in info, node_id
        assert info[node_id]["category"] == "CacheKit"
        assert info[node_id]["output"] == ["MODEL"]
    fbc = info["CacheKitFirstBlockCache"]["input"]["required"]
    assert list(fbc) == ["model", "threshold", "start_percent", "end_percent", "max_consecutive_skips"]
    assert all("tooltip" in spec[1] for spec in fbc.values())
    assert "flux" in combo_options(info["CacheKitMagCache"]["input"]["required"]["ratios"])


def test_first_block_cache_example_workflow_runs(server):
    prompt = tiny_wan_prompt("first_block_cache_wan_t2v.json", server.object_info(), "tiny_wan21.safetensors", steps=12)
    answer = server.queue_prompt(prompt)
    assert "prompt_id" in answer, answer
    entry = server.wait_for(answer["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert entry["outputs"]["stats"]["stats"][0]["shape"] == [1, 16, 1, 8, 8]
    assert "CacheKit FirstBlockCache [Wan]" in server.log_text()


def test_bad_widget_value_is_rejected_at_queue_time(server):
    prompt = tiny_wan_prompt("first_block_cache_wan_t2v.json", server.object_info(), "tiny_wan21.safetensors", steps=4)
    (node_id,) = [k for k, v in prompt.items() if v["class_type"] == "CacheKitFirstBlockCache"]
    prompt[node_id]["inputs"].update(start_percent=0.9, end_percent=0.2)
    answer = server.queue_prompt(prompt)
    assert "prompt_id" not in answer
    assert "start_percent" in str(answer["node_errors"][node_id])


def _run(server, prompt):
    answer = server.queue_prompt(prompt)
    assert "prompt_id" in answer, answer
    entry = server.wait_for(answer["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry


@pytest.mark.parametrize(
    "example, method",
    [
        ("mag_cache_wan_t2v.json", "MagCache"),
        ("pyramid_attention_broadcast_wan_t2v.json", "PyramidAttentionBroadcast"),
        ("faster_cache_wan_t2v.json", "FasterCache"),
        ("taylorseer_wan_t2v.json", "TaylorSeer"),
        ("hybrid_block_cache_wan_t2v.json", "HybridBlockCache"),
    ],
)
def test_example_workflow_runs(server, example, method):
    prompt = tiny_wan_prompt(example, server.object_info(), "tiny_wan21.safetensors", steps=12)
    _run(server, prompt)
    assert f"CacheKit {method} [Wan]" in server.log_text()


def test_calibrate_then_use_the_file_through_the_server(server):
    calibrate = tiny_wan_prompt("mag_cache_calibrate_wan_t2v.json", server.object_info(), "tiny_wan21.safetensors", steps=12)
    _run(server, calibrate)
    written = server.models / "magcache_ratios" / "wan2.1_t2v_1.3B" / "calibration_00001.safetensors"
    assert written.is_file()
    info = server.object_info()  # the new file is offered without a restart
    assert "wan2.1_t2v_1.3B/calibration_00001.safetensors" in combo_options(info["CacheKitMagCache"]["input"]["required"]["ratios"])
    use = tiny_wan_prompt("mag_cache_from_calibration_wan_t2v.json", info, "tiny_wan21.safetensors", steps=12)
    _run(server, use)
    assert "CacheKit MagCache [Wan]" in server.log_text()


def test_corrupt_ratio_file_is_a_clear_error_and_the_server_keeps_running(server):
    folder = server.models / "magcache_ratios"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "broken.safetensors").write_bytes(b"garbage")
    prompt = tiny_wan_prompt("mag_cache_wan_t2v.json", server.object_info(), "tiny_wan21.safetensors", steps=4)
    (node_id,) = [k for k, v in prompt.items() if v["class_type"] == "CacheKitMagCache"]
    prompt[node_id]["inputs"]["ratios"] = "broken.safetensors"
    answer = server.queue_prompt(prompt)
    assert "prompt_id" not in answer
    assert "broken.safetensors" in str(answer["node_errors"][node_id]) and "cannot be read" in str(answer["node_errors"][node_id])
    assert server.get("/system_stats")  # still serving


def test_ratios_for_another_family_warn_on_the_node(server):
    prompt = tiny_wan_prompt("mag_cache_wan_t2v.json", server.object_info(), "tiny_wan21.safetensors", steps=6)
    (node_id,) = [k for k, v in prompt.items() if v["class_type"] == "CacheKitMagCache"]
    prompt[node_id]["inputs"]["ratios"] = "flux"
    entry = _run(server, prompt)
    (warning,) = entry["outputs"][node_id]["text"]
    assert "calibrated for Flux, but the model is Wan" in warning
    assert warning in server.log_text()
