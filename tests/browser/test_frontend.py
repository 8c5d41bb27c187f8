"""The web extension in the real ComfyUI frontend, in headless Chromium, against a real headless server.

One server and one page for the module: the page loads without console errors from the extension, the
extension is registered, every example workflow loads in the frontend as saved, and each one, made
runnable on the tiny test model, is queued from the frontend; the cache node then shows the numbers of
that run (checked against the server's log line of the run) and the calibration node shows its curves
and the file it wrote. Screenshots go to tests/artifacts/.
"""
from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from harness.comfy_env import REPO, boot_comfy
from harness.server import ComfyServer
from harness.tiny_models import write_checkpoint
from harness.workflow import ui_to_api


EXAMPLES = REPO / "example_workflows"
EXAMPLE_NAMES = sorted(p.name for p in EXAMPLES.glob("*.json"))
EXTENSION_URL = "/extensions/comfyui-cachekit/"
STEPS = 12
CALIBRATE = "mag_cache_calibrate_wan_t2v.json"
FROM_CALIBRATION = "mag_cache_from_calibration_wan_t2v.json"
VIEWPORT = {"width": 1440, "height": 900}
RUN_ORDER = [CALIBRATE] + [name for name in EXAMPLE_NAMES if name != CALIBRATE]  # the file first, then its user
SUMMARY_LINE = re.compile(
    r"CacheKit (?P<method>\w+) \[(?P<family>[^\]]+)\]: computed (?P<computed>\d+)/(?P<evaluated>\d+) steps, "
    r"(?P<units_computed>\d+)/(?P<units_total>\d+) (?P<unit>[^(]+?) \((?P<speedup>[\d.]+)x est\. speedup\)"
)


# ------------------------------------------------------------------------------ workflows


def tiny_ui_workflow(example: str, steps: int = STEPS) -> dict:
    """An example workflow, still in the frontend's UI format, made runnable on the tiny test model.

    The model keeps its name (the tiny checkpoint is saved under it); the text encoders become test
    conditioning nodes, the CLIP and VAE loaders, the decode and the save are replaced by the test
    node that saves the latent; the latent is 64x64, one frame. The CacheKit node is untouched.
    """
    workflow = json.loads((EXAMPLES / example).read_text())
    nodes = {node["id"]: node for node in workflow["nodes"]}
    links = {link[0]: link for link in workflow["links"]}

    def drop_link(link_id):
        link = links.pop(link_id, None)
        if link is None:
            return
        source, target = nodes.get(link[1]), nodes.get(link[3])
        if source:
            for output in source.get("outputs", []):
                if output.get("links"):
                    output["links"] = [i for i in output["links"] if i != link_id]
        if target:
            for entry in target.get("inputs", []):
                if entry.get("link") == link_id:
                    entry["link"] = None

    def drop_node(node_id):
        for link_id in [i for i, link in links.items() if node_id in (link[1], link[3])]:
            drop_link(link_id)
        nodes.pop(node_id)

    by_type = lambda kind: [n for n in list(nodes.values()) if n["type"] == kind]  # noqa: E731
    for index, node in enumerate(by_type("CLIPTextEncode")):
        for entry in node.get("inputs", []):
            if entry.get("link") is not None:
                drop_link(entry["link"])
        node.update(type="CacheKitTestConditioning", inputs=[], widgets_values=["wan21", index + 1, 8],
                    properties={"Node name for S&R": "CacheKitTestConditioning"})
    for kind in ("CLIPLoader", "VAELoader", "VAEDecode", "SaveAnimatedWEBP"):
        for node in by_type(kind):
            drop_node(node["id"])
    for node in by_type("EmptyHunyuanLatentVideo"):
        node["widgets_values"][:4] = [64, 64, 1, 1]
    (sampler,) = by_type("KSampler")
    sampler["widgets_values"][2] = steps
    stats_id, link_id = workflow["last_node_id"] + 1, workflow["last_link_id"] + 1
    links[link_id] = [link_id, sampler["id"], 0, stats_id, 0, "LATENT"]
    sampler["outputs"][0]["links"] = [link_id]
    nodes[stats_id] = {
        "id": stats_id, "type": "CacheKitTestLatentStats", "pos": [sampler["pos"][0], sampler["pos"][1] + 320],
        "size": [315, 60], "flags": {}, "order": len(nodes), "mode": 0,
        "inputs": [{"name": "samples", "type": "LATENT", "link": link_id}], "outputs": [],
        "properties": {"Node name for S&R": "CacheKitTestLatentStats"}, "widgets_values": ["latent"],
    }
    workflow.update(nodes=list(nodes.values()), links=list(links.values()), last_node_id=stats_id, last_link_id=link_id)
    return workflow


def cache_node_ids(workflow: dict) -> list[int]:
    return [node["id"] for node in workflow["nodes"] if node["type"].startswith("CacheKit") and not node["type"].startswith("CacheKitTest")]


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def server():
    boot_comfy()  # the tiny checkpoint is written with ComfyUI's modules
    srv = ComfyServer(front_end=True)
    # the examples load "wan2.1_t2v_1.3B_fp16.safetensors": the tiny Wan 2.1 model under that name
    write_checkpoint("wan21", srv.models / "diffusion_models" / "wan2.1_t2v_1.3B_fp16.safetensors")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


class Page:
    """The frontend in one browser page, with every console message and page error it produced."""

    def __init__(self, page, server: ComfyServer) -> None:
        self.page = page
        self.server = server
        self.messages: list[dict] = []
        self.responses: list[tuple[int, str]] = []
        page.on("response", lambda response: self.responses.append((response.status, response.url)))
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.messages.append({"type": "pageerror", "text": str(error), "where": error.stack or ""}))

    def _console(self, message) -> None:
        location = message.location or {}
        self.messages.append({"type": message.type, "text": message.text, "where": str(location.get("url", ""))})

    def errors(self) -> list[dict]:
        return [m for m in self.messages if m["type"] in ("error", "pageerror")]

    def extension_errors(self) -> list[dict]:
        """Errors (and warnings) that come from the CacheKit extension or name CacheKit."""
        return [m for m in self.messages if m["type"] in ("error", "pageerror", "warning")
                and ("cachekit" in m["text"].lower() or "cachekit" in m["where"].lower())]

    def evaluate(self, script: str, arg=None):
        return self.page.evaluate(script, arg)

    def load(self, workflow: dict) -> None:
        """Load a UI-format workflow, then show the cache node and the sampler at 100 % zoom."""
        self.evaluate(
            """async (wf) => { await window.app.loadGraphData(wf); const ds = window.app.canvas?.ds;
                if (ds) { ds.scale = 1; ds.offset[0] = -560; ds.offset[1] = 110; } window.app.canvas?.setDirty?.(true, true); }""",
            workflow,
        )

    def node_state(self, node_id: int) -> dict | None:
        return self.evaluate(
            """(id) => { const n = window.app.graph.getNodeById(id); if (!n) return null;
                return { report: n.cachekitReport ?? null, runs: n.cachekit?.runs?.length ?? 0, drawn: n.cachekitDrawn ?? null,
                         size: [n.size[0], n.size[1]], pos: [n.pos[0], n.pos[1]] }; }""",
            node_id,
        )

    def screenshot_nodes(self, node_ids: list[int], path: Path, margin: float = 24) -> None:
        """A screenshot of the part of the canvas that holds these nodes (title bar included)."""
        box = self.evaluate(
            """(ids) => { const app = window.app, ds = app.canvas.ds, rect = app.canvas.canvas.getBoundingClientRect();
                const title = window.LiteGraph?.NODE_TITLE_HEIGHT ?? 30; let b = null;
                for (const id of ids) { const n = app.graph.getNodeById(id); if (!n) continue;
                  const x0 = (n.pos[0] + ds.offset[0]) * ds.scale + rect.left, y0 = (n.pos[1] - title + ds.offset[1]) * ds.scale + rect.top;
                  const x1 = (n.pos[0] + n.size[0] + ds.offset[0]) * ds.scale + rect.left, y1 = (n.pos[1] + n.size[1] + ds.offset[1]) * ds.scale + rect.top;
                  b = b ? [Math.min(b[0], x0), Math.min(b[1], y0), Math.max(b[2], x1), Math.max(b[3], y1)] : [x0, y0, x1, y1]; }
                return b; }""",
            node_ids,
        )
        if not box:
            self.page.screenshot(path=str(path))
            return
        x0, y0 = max(0, box[0] - margin), max(0, box[1] - margin)
        x1, y1 = min(VIEWPORT["width"], box[2] + margin), min(VIEWPORT["height"], box[3] + margin)
        self.page.screenshot(path=str(path), clip={"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0})


@pytest.fixture(scope="module")
def frontend(server, browser):
    # a first visit opens the template browser over the canvas; tabs and minimap would hide nodes
    settings = {"Comfy.TutorialCompleted": True, "Comfy.Workflow.WorkflowTabsPosition": "Sidebar", "Comfy.Minimap.Visible": False}
    request = urllib.request.Request(f"{server.url}/settings", data=json.dumps(settings).encode(), headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).close()
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=2)
    page = Page(context.new_page(), server)
    page.page.goto(server.url)
    page.page.wait_for_function(
        "() => window.app?.graph && window.app?.canvas && (window.app.extensions?.length ?? 0) > 0 "
        "&& window.LiteGraph?.registered_node_types?.CacheKitFirstBlockCache", timeout=90_000,
    )
    page.page.wait_for_timeout(1500)  # let the frontend finish its startup work (settings, default graph)
    try:
        yield page
    finally:
        context.close()


# ------------------------------------------------------------------------------ tests


def test_page_loads_without_console_errors_from_the_extension(frontend, server, artifacts):
    frontend.page.screenshot(path=str(artifacts / "browser_start.png"))
    ours = [(status, url) for status, url in frontend.responses if EXTENSION_URL in url]
    assert ours and all(status in (200, 304) for status, _ in ours), ours
    assert any(url.endswith("/cachekit.js") for _, url in ours), ours
    assert frontend.extension_errors() == [], frontend.extension_errors()


def test_extension_is_registered(frontend):
    names = frontend.evaluate("() => window.app.extensions.map(e => e.name)")
    assert [name for name in names if "CacheKit" in name] == ["CacheKit.RunReport"], names


def test_only_cachekit_node_types_are_patched(frontend):
    patched = frontend.evaluate(
        "() => Object.entries(window.LiteGraph.registered_node_types).filter(([, t]) => t.cachekit).map(([name, t]) => [name, t.nodeData?.category])"
    )
    assert patched and all(category == "CacheKit" for _, category in patched), patched
    assert {name for name, _ in patched} >= {"CacheKitFirstBlockCache", "CacheKitMagCacheCalibrate", "CacheKitMagCache"}


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_example_workflow_loads_as_saved(frontend, server, example):
    """The saved workflow loads in the frontend, every node type is known, and the frontend turns the
    cache node's saved widget values into the same inputs as the tests' own conversion."""
    workflow = json.loads((EXAMPLES / example).read_text())
    before = len(frontend.errors())
    frontend.load(workflow)
    unknown = frontend.evaluate("() => window.app.graph._nodes.filter(n => !window.LiteGraph.registered_node_types[n.type]).map(n => n.type)")
    assert unknown == []
    prompt = frontend.evaluate("async () => (await window.app.graphToPrompt()).output")
    expected = ui_to_api(workflow, server.object_info())
    for node_id in cache_node_ids(workflow):
        ours = expected[str(node_id)]
        assert prompt[str(node_id)]["class_type"] == ours["class_type"]
        widgets = {k: v for k, v in ours["inputs"].items() if not isinstance(v, list)}
        assert {k: prompt[str(node_id)]["inputs"][k] for k in widgets} == widgets
    assert frontend.extension_errors() == []
    assert [m for m in frontend.errors()[before:] if m["type"] == "pageerror"] == []


def _queue_and_wait(frontend: Page, server: ComfyServer, workflow: dict, timeout: float = 120) -> dict[int, dict]:
    """Queue the loaded workflow from the frontend; the state of every cache node once its report arrived."""
    log_start = len(server.log_text())
    frontend.load(workflow)
    ids = cache_node_ids(workflow)
    assert all(frontend.node_state(i)["report"] is None for i in ids)
    frontend.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    frontend.page.wait_for_function(
        "(ids) => ids.every(id => window.app.graph.getNodeById(id)?.cachekitDrawn?.summaries?.length > 0)", arg=ids,
        timeout=timeout * 1000,
    )
    states = {i: frontend.node_state(i) for i in ids}
    prompt_id = states[ids[0]]["report"] and frontend.evaluate(f"() => window.app.graph.getNodeById({ids[0]}).cachekit.promptId")
    assert prompt_id, "the report names no prompt"
    deadline = time.time() + timeout
    while time.time() < deadline:
        history = server.get(f"/history/{prompt_id}")
        if history.get(prompt_id, {}).get("status", {}).get("completed") is not None:
            break
        time.sleep(0.2)
    entry = server.get(f"/history/{prompt_id}")[prompt_id]
    assert entry["status"]["status_str"] == "success", entry["status"]
    for state in states.values():
        state["log"] = server.log_text()[log_start:]
        state["history"] = entry
    return states


def _assert_report_matches_log(state: dict) -> re.Match:
    report, drawn = state["report"], state["drawn"]
    lines = [m for m in SUMMARY_LINE.finditer(state["log"]) if m["method"] == report["method"]]
    assert len(lines) == 1, state["log"][-3000:]
    line = lines[0]
    assert report["steps_computed"] == int(line["computed"])
    assert report["steps_evaluated"] == int(line["evaluated"])
    assert report["units_computed"] == int(line["units_computed"]) and report["units_total"] == int(line["units_total"])
    assert f"{report['estimated_speedup']:.2f}" == line["speedup"]
    assert report["total_steps"] == STEPS and len(report["steps"]) == STEPS
    assert report["steps"].count("computed") == report["steps_computed"]
    assert f"{line['computed']}/{line['evaluated']} steps computed" in drawn["summaries"][0]
    assert f"{line['speedup']}x est." in drawn["summaries"][0]
    assert drawn["cells"] == [STEPS]
    if report["note"] and "calibration" not in report:
        assert drawn["notes"] == [report["note"]]
    return line


@pytest.mark.parametrize("example", RUN_ORDER)
def test_example_workflow_runs_from_the_frontend_and_the_node_shows_the_run(frontend, server, artifacts, example):
    workflow = tiny_ui_workflow(example)
    (cache_id,) = cache_node_ids(workflow)
    saved_size = next(n["size"] for n in workflow["nodes"] if n["id"] == cache_id)
    states = _queue_and_wait(frontend, server, workflow)
    state = states[cache_id]
    _assert_report_matches_log(state)
    # the panel is drawn inside the node: the node grew to hold it
    assert state["size"][1] > saved_size[1]
    frontend.page.wait_for_timeout(200)
    if example in ("first_block_cache_wan_t2v.json", CALIBRATE):
        frontend.page.screenshot(path=str(artifacts / f"browser_{Path(example).stem}.png"))
    frontend.screenshot_nodes([cache_id], artifacts / f"browser_{Path(example).stem}_node.png")
    if example == CALIBRATE:
        calibration = state["report"]["calibration"]
        written = sorted((server.models / "magcache_ratios").rglob("*.safetensors"))
        assert [p.name for p in written] == [calibration["file"]] == ["calibration_00001.safetensors"]
        assert set(calibration["ratios"]) == {"cond", "uncond"}  # CFG 6: both branches
        assert state["drawn"]["file"] == calibration["file"]
        assert state["drawn"]["curves"] == {b: len(calibration["ratios"][b]) for b in ("cond", "uncond")}
        assert len(calibration["progress"]) == len(calibration["ratios"]["cond"]) >= 2
        assert calibration["file"] in state["log"]
    else:
        assert state["drawn"]["curves"] == {} and state["drawn"]["file"] is None
    assert frontend.extension_errors() == [], frontend.extension_errors()


def test_a_workflow_without_cachekit_nodes_is_left_alone(frontend, server):
    workflow = tiny_ui_workflow("first_block_cache_wan_t2v.json")
    (cache_id,) = cache_node_ids(workflow)
    cache = next(n for n in workflow["nodes"] if n["id"] == cache_id)
    (model_link,) = [e["link"] for e in cache["inputs"] if e["name"] == "model"]
    (out_link,) = cache["outputs"][0]["links"]
    links = {link[0]: link for link in workflow["links"]}
    links[out_link][1] = links[model_link][1]  # ModelSamplingSD3 -> KSampler directly
    source = next(n for n in workflow["nodes"] if n["id"] == links[model_link][1])
    source["outputs"][0]["links"] = [out_link]
    del links[model_link]
    workflow["nodes"] = [n for n in workflow["nodes"] if n["id"] != cache_id]
    workflow["links"] = list(links.values())
    frontend.load(workflow)
    before = len(frontend.messages)
    sizes = frontend.evaluate("() => window.app.graph._nodes.map(n => [n.id, n.size[0], n.size[1]])")
    known = set(server.get("/history"))
    frontend.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    deadline = time.time() + 120
    while time.time() < deadline:
        new = {k: v for k, v in server.get("/history").items() if k not in known}
        if new and all(v.get("status", {}).get("completed") is not None for v in new.values()):
            break
        time.sleep(0.2)
    (entry,) = new.values()
    assert entry["status"]["status_str"] == "success"
    frontend.page.wait_for_timeout(300)
    assert frontend.evaluate("() => window.app.graph._nodes.filter(n => n.cachekit || n.cachekitReport || n.cachekitDrawn).length") == 0
    assert frontend.evaluate("() => window.app.graph._nodes.map(n => [n.id, n.size[0], n.size[1]])") == sizes
    assert [m for m in frontend.messages[before:] if m["type"] in ("error", "pageerror")] == []


def test_a_cache_node_inside_a_subgraph_shows_its_run(frontend, server, artifacts):
    """Inside a subgraph the server names the node by its execution id ("<subgraph node>:<node>")."""
    workflow = tiny_ui_workflow("first_block_cache_wan_t2v.json", steps=6)
    (cache_id,) = cache_node_ids(workflow)
    frontend.load(workflow)
    converted = frontend.evaluate(
        """(id) => { const graph = window.app.graph, node = graph.getNodeById(id);
            if (typeof graph.convertToSubgraph !== "function") return null;
            const result = graph.convertToSubgraph(new Set([node]));
            window.app.canvas?.setDirty?.(true, true);
            const outer = result?.node; const inner = outer?.subgraph?.nodes?.find?.(n => n.type === node.type) ?? outer?.subgraph?._nodes?.find(n => n.type === node.type);
            return outer && inner ? { outer: outer.id, inner: inner.id } : null; }""",
        cache_id,
    )
    if converted is None:
        pytest.skip("this frontend cannot convert nodes to a subgraph from a script")
    prompt = frontend.evaluate("async () => (await window.app.graphToPrompt()).output")
    execution_id = f"{converted['outer']}:{converted['inner']}"
    assert prompt[execution_id]["class_type"] == "CacheKitFirstBlockCache", list(prompt)
    log_start = len(server.log_text())
    frontend.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    frontend.page.wait_for_function(
        "(ids) => window.app.graph.getNodeById(ids.outer)?.subgraph?.getNodeById(ids.inner)?.cachekitReport", arg=converted, timeout=120_000,
    )
    report = frontend.evaluate("(ids) => window.app.graph.getNodeById(ids.outer).subgraph.getNodeById(ids.inner).cachekitReport", converted)
    (line,) = SUMMARY_LINE.finditer(server.log_text()[log_start:])
    assert (report["steps_computed"], report["steps_evaluated"]) == (int(line["computed"]), int(line["evaluated"]))
    assert frontend.extension_errors() == []


def test_bad_or_foreign_reports_are_ignored_quietly(frontend, server):
    workflow = tiny_ui_workflow("first_block_cache_wan_t2v.json")
    (cache_id,) = cache_node_ids(workflow)
    frontend.load(workflow)
    before = len(frontend.messages)
    result = frontend.evaluate(
        """async (cacheId) => {
            const api = window.comfyAPI.api.api, send = (detail) => api.dispatchEvent(new CustomEvent("cachekit.run_report", { detail }));
            const report = { method: "FirstBlockCache", steps_computed: 1, steps_evaluated: 2, estimated_speedup: 2, steps: ["computed", "reused"] };
            for (const detail of [null, {}, "text", { node: 999, report }, { node: "8", report }, { node: "8:3", report }, { node: cacheId }])
                send(detail);
            const sampler = window.app.graph.getNodeById(8);
            const untouched = !sampler.cachekit && !sampler.cachekitReport && window.app.graph.getNodeById(cacheId).cachekit === undefined;
            send({ node: String(cacheId), report: { steps: "not a list", estimated_speedup: "fast", calibration: { ratios: { cond: "x" } } } });
            window.app.canvas.draw(true, true);
            await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
            return { untouched, drawn: window.app.graph.getNodeById(cacheId).cachekitDrawn };
        }""",
        cache_id,
    )
    assert result["untouched"]
    assert result["drawn"]["summaries"] == ["0/0 steps computed · 1.00x est."] and result["drawn"]["curves"] == {}
    assert [m for m in frontend.messages[before:] if m["type"] in ("error", "pageerror", "warning")] == []


def test_a_frontend_without_the_expected_apis_gets_no_errors(frontend):
    """The module itself, loaded again into a page whose frontend API is missing or partial."""
    before = len(frontend.messages)
    outcome = frontend.evaluate(
        """async (url) => {
            const saved = window.comfyAPI, savedApp = window.app, calls = [];
            try {
                window.comfyAPI = {}; window.app = undefined;
                await import(url + "?missing=1");
                const partial = { registerExtension(ext) { calls.push(ext.name); ext.setup(); ext.beforeRegisterNodeDef(undefined, { category: "CacheKit" });
                                  ext.beforeRegisterNodeDef(function () {}, { category: "CacheKit" }); ext.beforeRegisterNodeDef(function () {}, null); } };
                window.comfyAPI = { app: { app: partial }, api: { api: {} } };
                await import(url + "?partial=1");
                return { ok: true, calls };
            } catch (error) { return { ok: false, error: String(error) }; }
            finally { window.comfyAPI = saved; window.app = savedApp; }
        }""",
        EXTENSION_URL + "cachekit.js",
    )
    assert outcome == {"ok": True, "calls": ["CacheKit.RunReport"]}, outcome
    frontend.page.wait_for_timeout(200)
    assert [m for m in frontend.messages[before:] if m["type"] in ("error", "pageerror", "warning")] == []


def test_runs_of_one_prompt_are_listed_together(frontend):
    """Two samplers sharing one cache node (e.g. Wan 2.2's two experts): one line and strip per run."""
    workflow = tiny_ui_workflow("first_block_cache_wan_t2v.json")
    (cache_id,) = cache_node_ids(workflow)
    frontend.load(workflow)
    drawn = frontend.evaluate(
        """async (cacheId) => {
            const api = window.comfyAPI.api.api, node = window.app.graph.getNodeById(cacheId);
            const send = (prompt_id, steps) => api.dispatchEvent(new CustomEvent("cachekit.run_report", { detail: { node: String(cacheId), prompt_id,
                report: { method: "FirstBlockCache", steps, steps_computed: steps.filter(s => s === "computed").length, steps_evaluated: steps.filter(Boolean).length,
                          units_total: 6, units_computed: 4, unit: "blocks", estimated_speedup: 1.5, note: "" } } }));
            send("a", ["computed", "reused", "", ""]);
            send("a", ["", "", "computed", "partial"]);
            window.app.canvas.draw(true, true);
            const two = node.cachekitDrawn;
            send("b", ["computed", "computed"]);
            window.app.canvas.draw(true, true);
            return { two, one: node.cachekitDrawn };
        }""",
        cache_id,
    )
    assert drawn["two"]["summaries"] == ["run 1: 1/2 steps computed · 4/6 blocks · 1.50x est.", "run 2: 1/2 steps computed · 4/6 blocks · 1.50x est."]
    assert drawn["two"]["cells"] == [4, 4]
    assert drawn["one"]["summaries"] == ["2/2 steps computed · 4/6 blocks · 1.50x est."]  # a new prompt starts over
