"""Turning the user-facing example workflows into ones that run on the tiny test models."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .comfy_env import REPO
from .workflow import drop_unreachable, nodes_of, ui_to_api

EXAMPLES = REPO / "example_workflows"


def tiny_wan_prompt(example: str, object_info: dict, unet_name: str, latent_name: str = "latent", steps: int | None = None) -> dict[str, Any]:
    """The example workflow in API form, on the tiny Wan model: text encoding swapped for test
    conditioning, the decode/save tail swapped for a node that saves the latent, a small latent."""
    workflow = json.loads((EXAMPLES / example).read_text())
    prompt = ui_to_api(workflow, object_info)
    for node_id in nodes_of(prompt, "UNETLoader"):
        prompt[node_id]["inputs"].update(unet_name=unet_name, weight_dtype="default")
    for index, node_id in enumerate(nodes_of(prompt, "CLIPTextEncode")):
        prompt[node_id] = {"class_type": "CacheKitTestConditioning", "inputs": {"family": "wan21", "seed": index + 1, "length": 8}}
    for node_id in nodes_of(prompt, "EmptyHunyuanLatentVideo"):
        prompt[node_id]["inputs"].update(width=64, height=64, length=1, batch_size=1)
    (sampler,) = nodes_of(prompt, "KSampler")
    if steps is not None:
        prompt[sampler]["inputs"]["steps"] = steps
    prompt["stats"] = {"class_type": "CacheKitTestLatentStats", "inputs": {"samples": [sampler, 0], "name": latent_name}}
    return drop_unreachable(prompt, ["stats"])


def without_node(prompt: dict[str, Any], class_type: str) -> dict[str, Any]:
    """The prompt with every node of `class_type` removed and its MODEL input wired straight through."""
    prompt = json.loads(json.dumps(prompt))
    for node_id in nodes_of(prompt, class_type):
        source = prompt[node_id]["inputs"]["model"]
        del prompt[node_id]
        for node in prompt.values():
            for key, value in node["inputs"].items():
                if value == [node_id, 0]:
                    node["inputs"][key] = source
    return prompt
