"""Interrupts on a live server: a cached run stopped mid-sampling by POST /interrupt leaves nothing behind.

CacheKitTestPauseAt holds the run at one model evaluation until the test has POSTed /interrupt; ComfyUI's own
step callback then ends the run, as the browser's cancel button does. Afterwards the same prompt gives exactly what
it gave before the interrupt (latent and work done, as the CacheKit log line says), CacheKit holds no run state and
no cached tensor, and an interrupted calibration wrote no file (only complete runs are saved).

Two placements: the cache node applied again by the next prompt ("before": CacheKitTestRerun ahead of it), and the
cache node's patched model served by ComfyUI's output cache, so the interrupted run and the next one sample the very
same patched model object ("after").
"""
from __future__ import annotations

import time

import pytest

from harness.robustness import NODE_IDS, REUSING, Result, RobustServer, ksampler, wan_chain, wan_prompt

pytestmark = pytest.mark.server

STEPS = 8
CAL = "CacheKitMagCacheCalibrate"


def settings(node: str, placement: str) -> dict:
    values = dict(REUSING[node])
    if node == CAL:
        values["filename_prefix"] = f"interrupt/{placement}"
    return values


def interrupted(server: RobustServer, node: str, placement: str, evaluation: int, **sampling) -> Result:
    """The node's prompt with a pause at `evaluation`, interrupted there through POST /interrupt."""
    marker = server.base / f"paused-{node}-{placement}-{evaluation}"
    marker.unlink(missing_ok=True)
    chain = wan_chain((node, settings(node, placement)), rerun=placement)
    paused = [chain.graph.add("CacheKitTestPauseAt", model=chain.model, evaluation=evaluation, marker=str(marker),
                              timeout=60.0), 0]
    model = paused
    if sampling.pop("split", False):
        model = [chain.graph.add("CacheKitTestSplitCFG", model=paused), 0]
    ksampler(chain, model, steps=STEPS, **sampling)
    start = len(server.log_text())
    answer = server.queue_prompt(chain.graph.prompt())
    assert "prompt_id" in answer, answer
    deadline = time.time() + 60
    while not marker.exists():
        assert time.time() < deadline, server.log_text()[-3000:]
        time.sleep(0.01)
    assert server.interrupt() == 200
    entry = server.wait_for(answer["prompt_id"])
    return Result(answer, entry, server.log_text()[start:])


def held(server: RobustServer, node: str, placement: str) -> dict:
    """What CacheKit holds now: a prompt of the node's chain without a sampler, probed after the cache node (so the
    patched model is alive: a positive control that the probe finds CacheKit's objects)."""
    chain = wan_chain((node, settings(node, placement)), rerun=placement)
    chain.graph.add("CacheKitTestProbe", node_id="probe", label="held", deep=True, after=chain.model)
    return server.ok(chain.graph.prompt()).probe()["cachekit"]


def ratio_files(server: RobustServer) -> set[str]:
    return {str(p.relative_to(server.ratios)) for p in server.ratios.rglob("*.safetensors")}


def assert_same_calibration(server: RobustServer, first: str, second: str) -> None:
    from safetensors import safe_open

    def read(name):
        with safe_open(str(server.ratios / name), framework="pt") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys()}, handle.metadata()

    (a, meta_a), (b, meta_b) = read(first), read(second)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert meta_a == meta_b


@pytest.mark.parametrize("placement", ["before", "after"])
@pytest.mark.parametrize("node", NODE_IDS)
def test_an_interrupted_run_leaves_nothing_behind(server, node, placement):
    prompt = wan_prompt((node, settings(node, placement)), rerun=placement, steps=STEPS)
    files = ratio_files(server)
    before = server.ok(prompt)
    written = ratio_files(server) - files
    assert len(written) == (1 if node == CAL else 0)

    stopped = interrupted(server, node, placement, evaluation=4)
    assert stopped.status == "error" and stopped.interrupted, stopped.error
    assert "stats" not in stopped.outputs
    assert ratio_files(server) == files | written  # an interrupted calibration writes nothing
    state = held(server, node, placement)
    assert state["modules"] and state["specs"] >= 1  # the probe sees CacheKit's runtime and the patched model
    assert (state["runs"], state["run_cache_bytes"], state["stores"], state["store_bytes"]) == (0, 0, 0, 0), state

    again = server.ok(prompt)
    assert (again.sha, again.work) == (before.sha, before.work)
    if node == CAL:
        (second,) = ratio_files(server) - files - written
        assert_same_calibration(server, *written, second)


@pytest.mark.parametrize("evaluation", [1, STEPS])
def test_an_interrupted_calibration_writes_nothing_even_at_its_first_or_last_step(server, evaluation):
    files = ratio_files(server)
    stopped = interrupted(server, CAL, "before", evaluation=evaluation)
    assert stopped.interrupted
    assert ratio_files(server) == files
    assert any("nothing saved" in m or "not saved" in m for m in stopped.messages), stopped.messages


@pytest.mark.parametrize("node, sampling", [
    ("CacheKitFirstBlockCache", dict(sampler="heun")),  # stopped between the two evaluations of a heun step
    ("CacheKitFasterCache", dict(split=True)),  # split CFG: the negative branch of a step not yet evaluated
    ("CacheKitTaylorSeerCache", dict(sampler="heun")),
    ("CacheKitHybridBlockCache", dict(split=True)),
])
def test_interrupts_inside_a_step(server, node, sampling):
    extra = {"split": True} if sampling.get("split") else {}
    prompt = wan_prompt((node, REUSING[node]), steps=STEPS, sampler=sampling.get("sampler", "euler"), **extra)
    before = server.ok(prompt)
    stopped = interrupted(server, node, "before", evaluation=5, **sampling)
    assert stopped.interrupted
    again = server.ok(prompt)
    assert (again.sha, again.work) == (before.sha, before.work)
