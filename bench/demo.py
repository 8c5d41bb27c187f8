"""CacheKit demo: a real workflow through real headless ComfyUI on a small generated Wan model.

Runs the First Block Cache example workflow twice in one server, without and with the cache node,
and prints the steps computed and reused, the speed ratio and the difference to the uncached result.
Usage: python3 bench/demo.py [--threshold 0.05] [--steps 30]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))  # last: ComfyUI's namespace package `comfy` must win over tests/comfy

from harness.comfy_env import boot_comfy, find_comfyui  # noqa: E402


def run(server, prompt) -> tuple[float, dict]:
    started = time.perf_counter()
    answer = server.queue_prompt(prompt)
    if "prompt_id" not in answer:
        raise RuntimeError(f"ComfyUI rejected the prompt: {answer}")
    entry = server.wait_for(answer["prompt_id"], timeout=900)
    if entry["status"]["status_str"] != "success":
        raise RuntimeError(f"the workflow failed: {entry['status']}")
    return time.perf_counter() - started, entry["outputs"]["stats"]["stats"][0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, default=0.15,
                        help="FirstBlockCache threshold (the example workflow's own value is 0.05; random weights change faster than trained ones)")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    if find_comfyui() is None:
        print("CacheKit demo: no ComfyUI found ($COMFYUI_PATH, ~/ComfyUI, .comfyui); run `make setup` with internet access.")
        return 0

    boot_comfy()
    import torch
    from safetensors.torch import load_file

    from harness.server import ComfyServer
    from harness.tiny_models import write_checkpoint
    from harness.tiny_workflows import tiny_wan_prompt, without_node

    server = ComfyServer()
    try:
        write_checkpoint("wan21", server.models / "diffusion_models" / "demo_wan.safetensors", dtype=torch.float32, num_layers=8, dim=256)
        server.wait_ready()
        info = server.object_info()
        cached = tiny_wan_prompt("first_block_cache_wan_t2v.json", info, "demo_wan.safetensors", latent_name="cached", steps=args.steps)
        for node in cached.values():
            if node["class_type"] == "EmptyHunyuanLatentVideo":
                node["inputs"].update(width=256, height=256, length=9)
            if node["class_type"] == "CacheKitFirstBlockCache":
                node["inputs"]["threshold"] = args.threshold
        uncached = without_node(cached, "CacheKitFirstBlockCache")
        uncached["stats"]["inputs"]["name"] = "uncached"
        warm_up = json.loads(json.dumps(uncached))
        for node in warm_up.values():
            if node["class_type"] == "KSampler":
                node["inputs"]["seed"] += 1  # a different seed, so ComfyUI does not reuse this result
        run(server, warm_up)  # loads the model once, outside the timings
        time_plain, stats_plain = run(server, uncached)
        time_cached, stats_cached = run(server, cached)
        report = re.findall(r"CacheKit FirstBlockCache \[.*", server.log_text())[-1]
        plain = load_file(stats_plain["path"])["samples"]
        fast = load_file(stats_cached["path"])["samples"]
    finally:
        server.stop()
    difference = (fast - plain).abs()
    print(f"\n{report}")
    print(f"uncached: {time_plain:.2f} s   cached: {time_cached:.2f} s   speed ratio: {time_plain / time_cached:.2f}x")
    print(f"difference to uncached latent: max {difference.max():.4f}, mean {difference.mean():.4f} "
          f"(latent std {plain.std():.4f}; relative mean {difference.mean() / plain.abs().mean():.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
