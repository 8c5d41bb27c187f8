"""A long session on one server: 100 prompts cycling every CacheKit node, seeds, samplers and node orders.

Every repeat of a prompt gives exactly its first occurrence's latent and work (the CacheKit log line; calibration
file names aside, whose counter grows). After prompt 10 and after prompt 100 CacheKitTestProbe (run after the
sampler, after a gc and ComfyUI's cache emptying, as ComfyUI's prompt worker does between prompts) reports the
server's RSS, what CacheKit holds, and the live tensors: no sampling run and no cached tensor survive a prompt, and
the RSS after prompt 100 is within 3 % of the RSS after prompt 10. The figures are printed (pytest -s shows them)
and written to tests/artifacts/long_session_<release>.json.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from harness.comfy_env import comfyui_version, find_comfyui
from harness.robustness import NODE_IDS, REUSING, wan_chain, ksampler

pytestmark = [pytest.mark.server, pytest.mark.slow]

FBC, PAB, FC, TS, MAG, CAL, HBC = NODE_IDS
PROMPTS = 100
GROWTH_LIMIT = 0.03
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def variants() -> dict[str, tuple[tuple, dict]]:
    """label -> (caches, sampling): the first ten cover every node, a pair and the unpatched model."""
    found: dict[str, tuple[tuple, dict]] = {}
    for node in NODE_IDS:
        found[f"{node}-seed42"] = (((node, REUSING[node]),), dict(seed=42))
    found["FBC+PAB"] = (((FBC, REUSING[FBC]), (PAB, REUSING[PAB])), dict(seed=42))
    found["unpatched"] = ((), dict(seed=42))
    found["FasterCache+MagCache-heun"] = (((FC, REUSING[FC]), (MAG, REUSING[MAG])), dict(seed=3, sampler="heun"))
    for node in NODE_IDS:
        found[f"{node}-seed7-cfg2"] = (((node, REUSING[node]),), dict(seed=7, cfg=2.0, steps=5))
    found["PAB+FBC"] = (((PAB, REUSING[PAB]), (FBC, REUSING[FBC])), dict(seed=42))
    found["MagCache+FasterCache-heun"] = (((MAG, REUSING[MAG]), (FC, REUSING[FC])), dict(seed=3, sampler="heun"))
    return found


def schedule() -> list[str]:
    """Each variant once in order, then random picks (seeded) up to PROMPTS."""
    labels = list(variants())
    rng = random.Random(0)
    return labels + [rng.choice(labels) for _ in range(PROMPTS - len(labels))]


def prompt_of(label: str, index: int, deep: bool) -> dict:
    caches, sampling = variants()[label]
    caches = tuple((node, dict(values, filename_prefix="session/run") if node == CAL else values) for node, values in caches)
    chain = wan_chain(*caches)
    sampler = ksampler(chain, **sampling)
    if deep:  # a gc over the whole server takes a while: only where memory is measured
        chain.graph.add("CacheKitTestProbe", node_id="probe", label=f"{index}:{label}", deep=True, after=[sampler, 0])
    return chain.graph.prompt()


def test_one_hundred_prompts(server):
    first: dict[str, tuple[str, list[str]]] = {}
    probes: dict[int, dict] = {}
    mismatches = []
    rss_outside = {}
    for index, label in enumerate(schedule(), start=1):
        deep = index in (10, PROMPTS)
        result = server.ok(prompt_of(label, index, deep))
        seen = (result.sha, result.work)
        if label not in first:
            first[label] = seen
        elif seen != first[label]:
            mismatches.append((index, label, seen, first[label]))
        if deep:
            probes[index] = result.probe()
            rss_outside[index] = server.rss()
    growth = probes[PROMPTS]["rss"] / probes[10]["rss"] - 1
    figures = {
        "release": comfyui_version(find_comfyui()), "prompts": PROMPTS, "variants": len(first),
        "repeats": PROMPTS - len(first), "mismatches": len(mismatches),
        "rss_after_10": probes[10]["rss"], "rss_after_100": probes[PROMPTS]["rss"], "rss_growth": round(growth, 5),
        "rss_outside_after_10": rss_outside[10], "rss_outside_after_100": rss_outside[PROMPTS],
        "cachekit_after_10": probes[10]["cachekit"], "cachekit_after_100": probes[PROMPTS]["cachekit"],
        "tensors_after_10": probes[10]["tensors"], "tensors_after_100": probes[PROMPTS]["tensors"],
    }
    print("\nCacheKit long session:", json.dumps(figures, indent=1))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"long_session_{figures['release']}.json").write_text(json.dumps(figures, indent=1))
    assert not mismatches, mismatches[:3]
    for index in (10, PROMPTS):
        held = probes[index]["cachekit"]
        assert held["modules"] and held["specs"] >= 1  # the probe sees CacheKit and the patched model of the prompt
        assert (held["runs"], held["run_cache_bytes"], held["stores"], held["store_bytes"]) == (0, 0, 0, 0), held
    assert abs(growth) <= GROWTH_LIMIT, figures
