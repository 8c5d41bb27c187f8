"""Prompts and a server session for the robustness tests (tests/comfy/test_robustness_*.py).

One headless ComfyUI server per test module (`RobustServer`), with a tiny Wan 2.1 checkpoint and a tiny LoRA for it
in its models folder. Prompts are built in the API format with `Graph`; every prompt built by `wan_prompt` passes the
loaded model through CacheKitTestRerun, so ComfyUI runs the CacheKit node and the sampler again in every prompt
(nothing is served from ComfyUI's output cache) while the checkpoint stays loaded. `RobustServer.run` queues a
prompt, waits for it and returns what a test compares: the latent's sha256, the CacheKit log lines it printed, the
UI outputs, the error.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from .server import ComfyServer

WAN = "tiny_wan21.safetensors"
LORA = "tiny_wan21_lora.safetensors"
LOG_LINE = re.compile(r"CacheKit \w+ \[[^\]]+\]: .*")

NODE_IDS = (
    "CacheKitFirstBlockCache", "CacheKitPyramidAttentionBroadcast", "CacheKitFasterCache", "CacheKitTaylorSeerCache",
    "CacheKitMagCache", "CacheKitMagCacheCalibrate", "CacheKitHybridBlockCache",
)
METHOD = {
    "CacheKitFirstBlockCache": "FirstBlockCache", "CacheKitPyramidAttentionBroadcast": "PyramidAttentionBroadcast",
    "CacheKitFasterCache": "FasterCache", "CacheKitTaylorSeerCache": "TaylorSeer", "CacheKitMagCache": "MagCache",
    "CacheKitMagCacheCalibrate": "MagCacheCalibration", "CacheKitHybridBlockCache": "HybridBlockCache",
}
DISPLAY = {
    "CacheKitFirstBlockCache": "First Block Cache (CacheKit)",
    "CacheKitPyramidAttentionBroadcast": "Pyramid Attention Broadcast (CacheKit)",
    "CacheKitFasterCache": "FasterCache (CacheKit)", "CacheKitTaylorSeerCache": "TaylorSeer Cache (CacheKit)",
    "CacheKitMagCache": "MagCache (CacheKit)", "CacheKitMagCacheCalibrate": "MagCache Calibrate (CacheKit)",
    "CacheKitHybridBlockCache": "Hybrid Block Cache (CacheKit)",
}
# Settings that reuse work on the tiny Wan within a few steps (the calibration node never reuses).
REUSING = {
    "CacheKitFirstBlockCache": dict(threshold=0.5, start_percent=0.0, end_percent=1.0, max_consecutive_skips=0),
    "CacheKitPyramidAttentionBroadcast": dict(spatial_attention_start_percent=0.0, spatial_attention_end_percent=1.0),
    "CacheKitFasterCache": dict(spatial_attention_start_percent=0.0, unconditional_batch_start_percent=0.0,
                                unconditional_batch_skip_range=2),
    "CacheKitTaylorSeerCache": dict(disable_cache_before_step=1, cache_interval=2),
    "CacheKitMagCache": dict(ratios="wan2.1_t2v_1.3B", threshold=0.5, retention_ratio=0.0, max_skip_steps=2),
    "CacheKitMagCacheCalibrate": dict(filename_prefix="robust/calibration"),
    "CacheKitHybridBlockCache": dict(residual_diff_threshold=0.5, warmup_steps=1, predictor="taylorseer"),
}
# Settings that reuse nothing: the unpatched result, bit for bit.
OFF = {
    "CacheKitFirstBlockCache": dict(threshold=0.0),
    "CacheKitPyramidAttentionBroadcast": dict(spatial_attention_block_skip_range=0, temporal_attention_block_skip_range=0,
                                              cross_attention_block_skip_range=0),
    "CacheKitFasterCache": dict(spatial_attention_block_skip_range=0, unconditional_batch_skip_range=0),
    "CacheKitTaylorSeerCache": dict(cache_interval=1),
    "CacheKitMagCache": dict(ratios="wan2.1_t2v_1.3B", threshold=0.0),
    "CacheKitMagCacheCalibrate": dict(filename_prefix="robust/off"),
    "CacheKitHybridBlockCache": dict(residual_diff_threshold=0.0),
}


def widget_defaults(node_id: str) -> dict[str, Any]:
    """A CacheKit node's widget values at their defaults (from its definition; other nodes: none)."""
    from cachekit.nodes import NODE_DEFS

    for definition in NODE_DEFS:
        if definition.node_id == node_id:
            return {w.id: w.default for w in definition.widgets}
    return {}


def tiny_wan_lora(state: dict[str, torch.Tensor], seed: int = 7, rank: int = 4) -> dict[str, torch.Tensor]:
    """A LoRA (lora_up / lora_down) on the self-attention q and first FFN layer of every block of a Wan state dict."""
    generator = torch.Generator().manual_seed(seed)
    lora = {}
    for name, weight in state.items():
        if name.endswith("self_attn.q.weight") or name.endswith("ffn.0.weight"):
            stem = "diffusion_model." + name[: -len(".weight")]
            lora[f"{stem}.lora_up.weight"] = torch.randn(weight.shape[0], rank, generator=generator) * 0.1
            lora[f"{stem}.lora_down.weight"] = torch.randn(rank, weight.shape[1], generator=generator) * 0.1
    return lora


@dataclass
class Result:
    """One finished (or refused) prompt."""

    answer: dict
    entry: Optional[dict] = None
    log: str = ""
    elapsed: float = 0.0

    @property
    def refused(self) -> bool:
        return "prompt_id" not in self.answer

    @property
    def status(self) -> str:
        return "refused" if self.refused else self.entry["status"]["status_str"]

    @property
    def outputs(self) -> dict:
        return (self.entry or {}).get("outputs", {})

    def stats(self, node: str = "stats") -> dict:
        return self.outputs[node]["stats"][0]

    @property
    def sha(self) -> str:
        return self.stats()["sha256"]

    def shas(self, *nodes: str) -> tuple[str, ...]:
        return tuple(self.stats(n)["sha256"] for n in nodes)

    @property
    def lines(self) -> list[str]:
        """The CacheKit run-report lines this prompt logged (ANSI colours removed)."""
        return LOG_LINE.findall(self.plain_log)

    @property
    def plain_log(self) -> str:
        return re.sub(r"\x1b\[[0-9;]*m", "", self.log)

    @property
    def work(self) -> list[str]:
        """The run-report lines without the names of the calibration files written (a counter that grows)."""
        return [re.sub(r"saved to \S+", "saved to <file>", line) for line in self.lines]

    @property
    def messages(self) -> list[str]:
        """Every line this prompt logged that names CacheKit, without ComfyUI's level tag (0.33 prints one)."""
        return [re.sub(r"^\[\w+\] ", "", line) for line in self.plain_log.splitlines() if "CacheKit" in line]

    def node_errors(self, node: str) -> tuple[str, str]:
        """(class_type, every message and detail) of one node's queue-time errors."""
        entry = self.answer.get("node_errors", {}).get(node, {})
        text = " | ".join(f"{e.get('message', '')}: {e.get('details', '')}" for e in entry.get("errors", []))
        return entry.get("class_type", ""), text

    @property
    def execution_error(self) -> dict:
        """The execution_error message of a prompt that failed while running ({} if none)."""
        for kind, data in (self.entry or {}).get("status", {}).get("messages", []):
            if kind == "execution_error":
                return data
        return {}

    def probe(self, node: str = "probe") -> dict:
        return self.outputs[node]["probe"][0]

    @property
    def error(self) -> str:
        """Everything the server said about a refusal or a failure, as one string."""
        if self.refused:
            return json.dumps(self.answer)
        messages = (self.entry or {}).get("status", {}).get("messages", [])
        return json.dumps(messages)

    @property
    def interrupted(self) -> bool:
        return any(m[0] == "execution_interrupted" for m in (self.entry or {}).get("status", {}).get("messages", []))


class Graph:
    """An API-format prompt built node by node; `add` returns the new node's id."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}

    def add(self, class_type: str, node_id: Optional[str] = None, **inputs: Any) -> str:
        node_id = node_id or str(len(self.nodes) + 1)
        while node_id in self.nodes:
            node_id = str(int(node_id) + 1) if node_id.isdigit() else node_id + "_"
        self.nodes[node_id] = {"class_type": class_type, "inputs": dict(inputs)}
        return node_id

    def prompt(self) -> dict[str, dict[str, Any]]:
        return json.loads(json.dumps(self.nodes))


@dataclass
class WanChain:
    """The nodes of a tiny-Wan prompt that a test may rewire: the model after the cache node(s), the conditioning,
    the latent."""

    graph: Graph
    model: list
    positive: list
    negative: list
    latent: list
    cache_nodes: list[str] = field(default_factory=list)


def wan_chain(*caches: tuple[str, dict], rerun: str = "before", lora: bool = False, shift: float = 8.0,
              cond_seed: int = 1) -> WanChain:
    """UNETLoader (tiny Wan) -> [LoRA] -> ModelSamplingSD3 -> the cache nodes, in order, with CacheKitTestRerun
    before them (rerun="before": every prompt applies the caches again), after them ("after": ComfyUI serves the
    cache nodes' patched model from its output cache, and the sampler runs again on that same object) or nowhere.

    Each cache is (node ID, widget values): values not given take the node's defaults on the server."""
    g = Graph()
    model = [g.add("UNETLoader", unet_name=WAN, weight_dtype="default"), 0]
    if lora:
        model = [g.add("LoraLoaderModelOnly", model=model, lora_name=LORA, strength_model=1.0), 0]
    model = [g.add("ModelSamplingSD3", model=model, shift=shift), 0]
    if rerun == "before":
        model = [g.add("CacheKitTestRerun", model=model), 0]
    nodes = []
    for node_id, values in caches:
        nodes.append(g.add(node_id, model=model, **{**widget_defaults(node_id), **values}))
        model = [nodes[-1], 0]
    if rerun == "after":
        model = [g.add("CacheKitTestRerun", model=model), 0]
    positive = [g.add("CacheKitTestConditioning", family="wan21", seed=cond_seed, length=8), 0]
    negative = [g.add("CacheKitTestConditioning", family="wan21", seed=cond_seed + 1, length=8), 0]
    latent = [g.add("EmptyHunyuanLatentVideo", width=64, height=64, length=1, batch_size=1), 0]
    return WanChain(g, model, positive, negative, latent, nodes)


def ksampler(chain: WanChain, model: Optional[list] = None, *, steps: int = 6, cfg: float = 3.0, sampler: str = "euler",
             scheduler: str = "simple", seed: int = 42, denoise: float = 1.0, name: str = "stats",
             latent: Optional[list] = None) -> str:
    """A KSampler on the chain's model (or `model`) and a CacheKitTestLatentStats node `name` after it."""
    g = chain.graph
    sampler_id = g.add("KSampler", model=model or chain.model, positive=chain.positive, negative=chain.negative,
                       latent_image=latent or chain.latent, seed=seed, steps=steps, cfg=cfg, sampler_name=sampler,
                       scheduler=scheduler, denoise=denoise)
    g.add("CacheKitTestLatentStats", node_id=name, samples=[sampler_id, 0], name=name)
    return sampler_id


def wan_prompt(*caches: tuple[str, dict], split: bool = False, probe: bool = False, lora: bool = False,
               rerun: str = "before", **sampling: Any) -> dict:
    """A whole prompt: wan_chain, [split CFG], one KSampler, its latent's stats, [a probe after it]."""
    chain = wan_chain(*caches, lora=lora, rerun=rerun)
    model = chain.model
    if split:
        model = [chain.graph.add("CacheKitTestSplitCFG", model=model), 0]
    sampler_id = ksampler(chain, model, **sampling)
    if probe:
        chain.graph.add("CacheKitTestProbe", node_id="probe", label="probe", deep=True, after=[sampler_id, 0])
    return chain.graph.prompt()


def node_of(prompt: dict, class_type: str) -> str:
    (node_id,) = [k for k, v in prompt.items() if v["class_type"] == class_type]
    return node_id


class RobustServer(ComfyServer):
    """A ComfyServer with the tiny Wan checkpoint and its LoRA in place, and helpers to run prompts."""

    def __init__(self, threads: int = 1) -> None:
        saved = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = str(threads)  # the tiny models run far faster on one thread of two cores
        try:
            super().__init__()
        finally:
            if saved is None:
                os.environ.pop("OMP_NUM_THREADS")
            else:
                os.environ["OMP_NUM_THREADS"] = saved
        from safetensors.torch import save_file

        from .tiny_models import wan21_state_dict, write_checkpoint

        write_checkpoint("wan21", self.models / "diffusion_models" / WAN)
        lora = tiny_wan_lora(wan21_state_dict(0))
        (self.models / "loras").mkdir(parents=True, exist_ok=True)
        save_file({k: v.to(torch.float16).contiguous() for k, v in lora.items()}, str(self.models / "loras" / LORA))
        self.wait_ready()

    @property
    def ratios(self) -> Path:
        path = self.models / "magcache_ratios"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run(self, prompt: dict, timeout: float = 300) -> Result:
        """Queue `prompt` and wait for it; a refused prompt comes back at once."""
        start = len(self.log_text())
        began = time.time()
        answer = self.queue_prompt(prompt)
        if "prompt_id" not in answer:
            return Result(answer, log=self.log_text()[start:], elapsed=time.time() - began)
        entry = self.wait_for(answer["prompt_id"], timeout=timeout)
        time.sleep(0.05)  # the worker prints its last line after the history entry is written
        return Result(answer, entry, self.log_text()[start:], time.time() - began)

    def ok(self, prompt: dict) -> Result:
        """run(), asserting that the prompt succeeded."""
        result = self.run(prompt)
        assert result.status == "success", result.error + "\n" + result.log[-3000:]
        return result

    def rss(self) -> int:
        """The server process's resident memory, in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def interrupt(self) -> int:
        """POST /interrupt (as the browser's cancel button); its HTTP status."""
        import urllib.request

        request = urllib.request.Request(self.url + "/interrupt", data=b"{}", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status

    def alive(self) -> bool:
        return self.process.poll() is None and bool(self.get("/system_stats"))
