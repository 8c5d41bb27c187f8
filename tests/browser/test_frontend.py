"""The web extension in the real ComfyUI frontend, in headless Chromium, against a real headless server.

The module runs once per frontend build x renderer tested against the ComfyUI release under test
(harness/frontends.py: ComfyUI 0.33: frontend 1.49.6 and the newest tested, each in the classic canvas
and in Nodes 2.0; ComfyUI 0.3.60 - 0.3.64: frontend 1.27.10, classic), with one server and one page
per combination. The page loads without console errors from the extension, the extension is
registered, every example workflow loads in the frontend as saved, and each one, made runnable on the
tiny test model, is queued from the frontend; the cache node then shows, inside the node, the numbers
of that run (checked against the server's log line of the run), no other widget or slot overlaps the
report (DOM rectangles, and for canvas widgets the node's widget layout), and the calibration node
shows its curves and the file it wrote. Screenshots go to tests/artifacts/browser_<frontend>_*.png.
A frontend build that is not in .frontends/ skips its tests with the reason.
"""
from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from harness.comfy_env import REPO, boot_comfy, find_comfyui
from harness.frontends import Frontend, frontends_for, unavailable_reason
from harness.server import ComfyServer
from harness.tiny_models import write_checkpoint
from harness.workflow import ui_to_api


EXAMPLES = REPO / "example_workflows"
EXAMPLE_NAMES = sorted(p.name for p in EXAMPLES.glob("*.json"))
EXTENSION_URL = "/extensions/comfyui-cachekit/"
REPORT_WIDGET = "cachekit_run_report"
STEPS = 12
CALIBRATE = "mag_cache_calibrate_wan_t2v.json"
FROM_CALIBRATION = "mag_cache_from_calibration_wan_t2v.json"
SCREENSHOT_EXAMPLES = ("first_block_cache_wan_t2v.json", CALIBRATE)
VIEWPORT = {"width": 1440, "height": 900}
RUN_ORDER = [CALIBRATE] + [name for name in EXAMPLE_NAMES if name != CALIBRATE]  # the file first, then its user
SUMMARY_LINE = re.compile(
    r"CacheKit (?P<method>\w+) \[(?P<family>[^\]]+)\]: computed (?P<computed>\d+)/(?P<evaluated>\d+) steps, "
    r"(?P<units_computed>\d+)/(?P<units_total>\d+) (?P<unit>[^(]+?) \((?P<speedup>[\d.]+)x est\. speedup\)"
)
FRONTENDS = frontends_for(find_comfyui())
TOLERANCE = 0.5  # px: rectangles that only touch do not overlap


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


# ------------------------------------------------------------------------------ the page

# Where the report and everything else of a node are on the screen, in CSS pixels. In Nodes 2.0 the
# node is DOM: its widget rows, slots, labels and controls. In the classic renderer the node is drawn
# on the canvas: its widgets' rows come from the node's widget layout (widget.y, computedHeight), its
# slots from getConnectionPos, projected through the canvas transform.
LAYOUT_JS = """(id) => {
  const app = window.app, LG = window.LiteGraph, node = (app.canvas?.graph ?? app.graph).getNodeById(id);  // on the graph shown
  if (!node) return null;
  const box = (b) => ({ left: b.left, top: b.top, right: b.right, bottom: b.bottom });
  const widget = (node.widgets ?? []).find((w) => w.name === "%s");
  const el = widget?.element ?? null;
  const out = { vue: Boolean(LG?.vueNodesMode), widget: Boolean(widget), report: null, node: null, others: [], hits: [], text: {} };
  const title = LG?.NODE_TITLE_HEIGHT ?? 30;
  if (out.vue) {
    const nodeEl = document.querySelector(`[data-node-id="${id}"]`);
    if (!nodeEl) return out;
    out.node = box(nodeEl.getBoundingClientRect());
    const mine = el?.closest?.(".lg-node-widget");
    for (const row of nodeEl.querySelectorAll(".lg-node-widget"))
      if (row !== mine) out.others.push({ what: "widget row " + row.textContent.trim().slice(0, 30), ...box(row.getBoundingClientRect()) });
    for (const e of nodeEl.querySelectorAll("*")) {
      if (el && (el.contains(e) || e.contains(el))) continue;
      const b = e.getBoundingClientRect();
      if (!b.width || !b.height || !e.checkVisibility?.()) continue;
      const control = e.matches("input, button, select, textarea, [role=slider], [role=combobox], [role=spinbutton]");
      const text = e.children.length === 0 && e.textContent.trim();
      if (control || text) out.others.push({ what: (control ? e.tagName.toLowerCase() + " " : "text ") + e.textContent.trim().slice(0, 30), ...box(b) });
    }
  } else {
    const ds = app.canvas.ds, c = app.canvas.canvas.getBoundingClientRect();
    const X = (x) => (x + ds.offset[0]) * ds.scale + c.left, Y = (y) => (y + ds.offset[1]) * ds.scale + c.top;
    const [x0, y0] = [node.pos[0], node.pos[1]], [w, h] = [node.size[0], node.size[1]];
    out.node = { left: X(x0), top: Y(y0), right: X(x0 + w), bottom: Y(y0 + h) };
    out.title = { left: X(x0), top: Y(y0 - title), right: X(x0 + w), bottom: Y(y0) };
    for (const other of node.widgets ?? []) {
      if (other === widget || other.hidden || (node.isWidgetVisible && !node.isWidgetVisible(other))) continue;
      const height = other.computedHeight ?? other.computeSize?.(w)?.[1] ?? LG.NODE_WIDGET_HEIGHT;
      out.others.push({ what: "widget " + other.name, left: X(x0), right: X(x0 + w), top: Y(y0 + other.y), bottom: Y(y0 + other.y + height) });
    }
    const half = (LG.NODE_SLOT_HEIGHT ?? 20) / 2;
    for (const [isInput, slots] of [[true, node.inputs ?? []], [false, node.outputs ?? []]])
      slots.forEach((slot, i) => {
        if (slot.widget) return;  // a widget's own input is drawn on the widget's row
        const [, sy] = node.getConnectionPos(isInput, i);
        out.others.push({ what: (isInput ? "input " : "output ") + slot.name, left: X(x0), right: X(x0 + w), top: Y(sy - half), bottom: Y(sy + half) });
      });
    if (widget) out.expectedTop = Y(y0 + widget.y + (widget.margin ?? 0));
  }
  if (el) {
    out.report = box(el.getBoundingClientRect());
    out.visible = el.checkVisibility?.() ?? true;
    for (const part of el.querySelectorAll("[data-cachekit]")) {
      const b = part.getBoundingClientRect();
      if (!b.width || !b.height) continue;
      const hit = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
      out.hits.push({ part: part.dataset.cachekit, ours: Boolean(hit && el.contains(hit)), hit: hit ? hit.tagName + "." + String(hit.className?.baseVal ?? hit.className).slice(0, 60) : null });
    }
    const all = (sel) => [...el.querySelectorAll(sel)];
    out.text = {
      summaries: all("[data-cachekit=summary]").map((e) => e.textContent),
      notes: all("[data-cachekit=note]").map((e) => e.textContent),
      strips: all("[data-cachekit=strip]").map((s) => [...s.children].map((c) => c.dataset.status)),
      curves: Object.fromEntries(all("polyline").map((p) => [p.dataset.cachekit, p.getAttribute("points").trim().split(/\\s+/).length])),
      file: el.querySelector("[data-cachekit=file]")?.textContent ?? null,
      color: getComputedStyle(el.querySelector("[data-cachekit=summary]") ?? el).color,
    };
  }
  return out;
}""" % REPORT_WIDGET


def overlaps(a: dict, b: dict, tolerance: float = TOLERANCE) -> bool:
    return (a["left"] < b["right"] - tolerance and b["left"] < a["right"] - tolerance
            and a["top"] < b["bottom"] - tolerance and b["top"] < a["bottom"] - tolerance)


def inside(inner: dict, outer: dict, tolerance: float = 1.0) -> bool:
    return (inner["left"] >= outer["left"] - tolerance and inner["right"] <= outer["right"] + tolerance
            and inner["top"] >= outer["top"] - tolerance and inner["bottom"] <= outer["bottom"] + tolerance)


class Page:
    """The frontend in one browser page, with every console message and page error it produced."""

    def __init__(self, page, server: ComfyServer, build: Frontend) -> None:
        self.page = page
        self.server = server
        self.build = build
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

    def settle(self) -> None:
        """Two animation frames: the canvas has drawn, the frontend has placed its DOM widgets."""
        self.evaluate("() => { window.app.canvas?.setDirty?.(true, true); return new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))); }")

    def node_state(self, node_id: int) -> dict | None:
        return self.evaluate(
            """(id) => { const n = window.app.graph.getNodeById(id); if (!n) return null;
                return { report: n.cachekitReport ?? null, runs: n.cachekit?.runs?.length ?? 0, drawn: n.cachekitDrawn ?? null,
                         size: [n.size[0], n.size[1]], pos: [n.pos[0], n.pos[1]] }; }""",
            node_id,
        )

    def layout(self, node_id: int) -> dict | None:
        """LAYOUT_JS for this node, once the frontend has mounted its report (or after 5 s: the asserts then say why)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(
                """(id) => { const n = (window.app.canvas?.graph ?? window.app.graph).getNodeById(id);
                    const el = n?.widgets?.find((w) => w.name === "%s")?.element;
                    return el?.isConnected && el.getBoundingClientRect().height > 0; }""" % REPORT_WIDGET,
                arg=node_id, timeout=5000,
            )
        except PlaywrightTimeout:
            pass
        self.settle()
        return self.evaluate(LAYOUT_JS, node_id)

    def screenshot_nodes(self, node_ids: list[int], path: Path, margin: float = 24) -> None:
        """A screenshot of the part of the page that holds these nodes (title bar included)."""
        boxes = [b for b in (self.evaluate(LAYOUT_JS, i) for i in node_ids) if b and b["node"]]
        if not boxes:
            self.page.screenshot(path=str(path))
            return
        x0 = min(b.get("title", b["node"])["left"] for b in boxes) - margin
        y0 = min(b.get("title", b["node"])["top"] for b in boxes) - margin
        x1 = max(b["node"]["right"] for b in boxes) + margin
        y1 = max(b["node"]["bottom"] for b in boxes) + margin
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(VIEWPORT["width"], x1), min(VIEWPORT["height"], y1)
        self.page.screenshot(path=str(path), clip={"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0})


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module", params=FRONTENDS, ids=[f.id for f in FRONTENDS])
def build(request) -> Frontend:
    """One frontend build in one renderer (the module runs once per combination)."""
    reason = unavailable_reason(request.param.version)
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")
    return request.param


@pytest.fixture(scope="module")
def server(build):
    boot_comfy()  # the tiny checkpoint is written with ComfyUI's modules
    srv = ComfyServer(front_end_root=build.root)
    # the examples load "wan2.1_t2v_1.3B_fp16.safetensors": the tiny Wan 2.1 model under that name
    write_checkpoint("wan21", srv.models / "diffusion_models" / "wan2.1_t2v_1.3B_fp16.safetensors")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def frontend(server, browser, build):
    # a first visit opens the template browser over the canvas; tabs and minimap would hide nodes
    settings = {"Comfy.TutorialCompleted": True, "Comfy.Workflow.WorkflowTabsPosition": "Sidebar", "Comfy.Minimap.Visible": False}
    if build.vue_nodes:
        settings["Comfy.VueNodes.Enabled"] = True
    request = urllib.request.Request(f"{server.url}/settings", data=json.dumps(settings).encode(), headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).close()
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=2)
    page = Page(context.new_page(), server, build)
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


def _shot(build: Frontend, name: str) -> str:
    return f"browser_{build.id}_{name}.png"


# ------------------------------------------------------------------------------ tests


def test_page_loads_without_console_errors_from_the_extension(frontend, server, artifacts, build):
    frontend.page.screenshot(path=str(artifacts / _shot(build, "start")))
    ours = [(status, url) for status, url in frontend.responses if EXTENSION_URL in url]
    assert ours and all(status in (200, 304) for status, _ in ours), ours
    assert any(url.endswith("/cachekit.js") for _, url in ours), ours
    assert frontend.extension_errors() == [], frontend.extension_errors()


def test_the_frontend_under_test_is_served_in_its_renderer(frontend, build):
    version = frontend.evaluate("async () => (await window.app.graphToPrompt()).workflow?.extra?.frontendVersion ?? null")
    assert version == build.version
    assert frontend.evaluate("() => Boolean(window.LiteGraph?.vueNodesMode)") == build.vue_nodes


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


def _assert_report_is_shown_and_covers_nothing(layout: dict, build: Frontend) -> None:
    """The report is a visible DOM widget inside the node, and nothing else of the node overlaps it."""
    assert layout and layout["widget"] and layout["report"], layout
    assert layout["vue"] == build.vue_nodes
    report = layout["report"]
    assert layout["visible"] and report["bottom"] - report["top"] > 20 and report["right"] - report["left"] > 200, layout
    assert inside(report, layout["node"]), (report, layout["node"])
    assert layout["others"], "no other widget or slot found to compare with"
    covered = [other for other in layout["others"] if overlaps(report, other)]
    assert covered == [], (report, covered)
    if not build.vue_nodes:  # placed where the frontend laid the widget out, below every other widget
        assert abs(report["top"] - layout["expectedTop"]) <= 1, layout
        assert report["top"] >= max(other["bottom"] for other in layout["others"]) - TOLERANCE
    hidden = [hit for hit in layout["hits"] if not hit["ours"]]
    assert layout["hits"] and hidden == [], layout["hits"]  # on top: what the page shows at each part is the report


@pytest.mark.parametrize("example", RUN_ORDER)
def test_example_workflow_runs_from_the_frontend_and_the_node_shows_the_run(frontend, server, artifacts, build, example):
    workflow = tiny_ui_workflow(example)
    (cache_id,) = cache_node_ids(workflow)
    states = _queue_and_wait(frontend, server, workflow)
    state = states[cache_id]
    line = _assert_report_matches_log(state)
    layout = frontend.layout(cache_id)
    _assert_report_is_shown_and_covers_nothing(layout, build)
    # what the page shows is the run's numbers (the server's log line) and one cell per step
    (summary,) = layout["text"]["summaries"]
    assert f"{line['computed']}/{line['evaluated']} steps computed" in summary and f"{line['speedup']}x est." in summary
    assert f"{line['units_computed']}/{line['units_total']} {line['unit']}" in summary
    assert layout["text"]["strips"] == [[s or "none" for s in state["report"]["steps"]]]
    # the report is the cache node's alone, and neither saved with the workflow nor sent with a prompt
    with_report = frontend.evaluate(f"() => window.app.graph._nodes.filter(n => n.widgets?.some(w => w.name === '{REPORT_WIDGET}')).map(n => Number(n.id))")
    assert with_report == [cache_id]
    saved = frontend.evaluate(f"() => window.app.graph.getNodeById({cache_id}).serialize()")
    original = next(n for n in workflow["nodes"] if n["id"] == cache_id)
    assert saved["widgets_values"] == original["widgets_values"]
    assert REPORT_WIDGET not in (saved.get("widgets_values_named") or {})
    prompt = frontend.evaluate("async () => (await window.app.graphToPrompt()).output")
    assert REPORT_WIDGET not in prompt[str(cache_id)]["inputs"]
    if example in SCREENSHOT_EXAMPLES:
        frontend.page.screenshot(path=str(artifacts / _shot(build, Path(example).stem)))
    frontend.screenshot_nodes([cache_id], artifacts / _shot(build, f"{Path(example).stem}_node"))
    if example == CALIBRATE:
        calibration = state["report"]["calibration"]
        written = sorted((server.models / "magcache_ratios").rglob("*.safetensors"))
        assert [p.name for p in written] == [calibration["file"]] == ["calibration_00001.safetensors"]
        assert set(calibration["ratios"]) == {"cond", "uncond"}  # CFG 6: both branches
        assert state["drawn"]["file"] == calibration["file"] == layout["text"]["file"]
        expected = {b: len(calibration["ratios"][b]) for b in ("cond", "uncond")}
        assert state["drawn"]["curves"] == expected
        assert layout["text"]["curves"] == {f"curve-{b}": n for b, n in expected.items()}
        assert len(calibration["progress"]) == len(calibration["ratios"]["cond"]) >= 2
        assert calibration["file"] in state["log"]
    else:
        assert state["drawn"]["curves"] == {} and state["drawn"]["file"] is None
        assert layout["text"]["curves"] == {} and layout["text"]["file"] is None
    assert frontend.extension_errors() == [], frontend.extension_errors()


def test_report_colours_follow_the_palette(frontend):
    """The text takes the palette's colours, and changes with it (dark, light, dark)."""
    workflow = tiny_ui_workflow("first_block_cache_wan_t2v.json")
    (cache_id,) = cache_node_ids(workflow)
    frontend.load(workflow)
    colours = frontend.evaluate(
        """async (cacheId) => {
            const api = window.comfyAPI.api.api, settings = window.app.extensionManager?.setting;
            api.dispatchEvent(new CustomEvent("cachekit.run_report", { detail: { node: String(cacheId), prompt_id: "palette",
                report: { method: "FirstBlockCache", steps: ["computed", "reused"], steps_computed: 1, steps_evaluated: 2, estimated_speedup: 2 } } }));
            const node = window.app.graph.getNodeById(cacheId);
            const line = () => node.widgets.find((w) => w.name === "%s").element.querySelector("[data-cachekit=summary]");
            const frames = () => { window.app.canvas?.setDirty?.(true, true); return new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))); };
            const colour = async () => { await frames(); return { mounted: line().isConnected, colour: getComputedStyle(line()).color }; };
            const out = { dark: await colour() };
            await settings.set("Comfy.ColorPalette", "light");
            out.light = await colour();
            await settings.set("Comfy.ColorPalette", "dark");
            out.back = await colour();
            return out;
        }""" % REPORT_WIDGET,
        cache_id,
    )
    assert all(c["mounted"] for c in colours.values()), colours
    assert colours["dark"]["colour"] == colours["back"]["colour"] == "rgb(221, 221, 221)", colours  # the dark palette's input text, #ddd
    assert colours["light"]["colour"] == "rgb(34, 34, 34)", colours  # the light palette's, #222


def test_the_properties_panel_does_not_list_the_report(frontend, build):
    """The report is no input: the frontend's properties panel (1.3x and newer) leaves it in the node."""
    workflow = tiny_ui_workflow("first_block_cache_wan_t2v.json")
    (cache_id,) = cache_node_ids(workflow)
    frontend.load(workflow)
    result = frontend.evaluate(
        """async (cacheId) => {
            const api = window.comfyAPI.api.api, node = window.app.graph.getNodeById(cacheId);
            const frames = () => { window.app.canvas?.setDirty?.(true, true); return new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))); };
            api.dispatchEvent(new CustomEvent("cachekit.run_report", { detail: { node: String(cacheId), prompt_id: "panel",
                report: { method: "FirstBlockCache", steps: ["computed", "reused"], steps_computed: 1, steps_evaluated: 2, estimated_speedup: 2 } } }));
            await frames();
            window.app.canvas.selectNode(node);
            await frames();
            const button = [...document.querySelectorAll("button")].find((b) => b.getAttribute("aria-label") === "Toggle properties panel");
            if (!button) return null;
            button.click();
            await new Promise((r) => setTimeout(r, 800));
            const texts = () => document.body.innerText;
            const out = { listed: texts().includes("%s"), threshold: texts().split("threshold").length - 1 };
            const el = node.widgets.find((w) => w.name === "%s").element;
            out.inNode = Boolean(el.closest("[data-node-id], .dom-widget"));
            button.click();
            await frames();
            window.app.canvas.deselectAll?.();
            return out;
        }""" % (REPORT_WIDGET, REPORT_WIDGET),
        cache_id,
    )
    if result is None:
        pytest.skip(f"frontend {build.version} has no properties panel")
    # the panel is open: the node's inputs are listed there too (and in Nodes 2.0 on the node, in the DOM)
    assert result["threshold"] >= (2 if build.vue_nodes else 1), result
    assert not result["listed"] and result["inNode"], result


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
    shape = "() => window.app.graph._nodes.map(n => [n.id, n.size[0], n.size[1], (n.widgets ?? []).map(w => w.name)])"
    sizes = frontend.evaluate(shape)
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
    assert frontend.evaluate(shape) == sizes
    assert frontend.evaluate("() => document.querySelectorAll('.cachekit-run-report').length") == 0
    assert [m for m in frontend.messages[before:] if m["type"] in ("error", "pageerror")] == []


def test_a_cache_node_inside_a_subgraph_shows_its_run(frontend, server, artifacts, build):
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
    # the node is not on the shown graph: its report is not on the screen either
    outside = frontend.evaluate(
        f"""(ids) => {{ const w = window.app.graph.getNodeById(ids.outer).subgraph.getNodeById(ids.inner).widgets.find(w => w.name === '{REPORT_WIDGET}');
            return w ? (w.element.isConnected && w.element.checkVisibility?.()) : null; }}""", converted,
    )
    assert outside in (False, None)
    # opened, the subgraph shows the node with its report, inside the node and covering nothing
    opened = frontend.evaluate(
        """async (ids) => { const outer = window.app.graph.getNodeById(ids.outer);
            if (typeof window.app.canvas.openSubgraph !== "function") return false;
            window.app.canvas.openSubgraph(outer.subgraph, outer);
            await new Promise((r) => setTimeout(r, 300));
            const inner = outer.subgraph.getNodeById(ids.inner), ds = window.app.canvas.ds;
            ds.scale = 1; ds.offset[0] = 300 - inner.pos[0]; ds.offset[1] = 150 - inner.pos[1];
            window.app.canvas.setDirty(true, true);
            return window.app.canvas.graph === outer.subgraph; }""", converted,
    )
    if opened:
        frontend.page.wait_for_timeout(300)
        layout = frontend.layout(converted["inner"])
        frontend.page.screenshot(path=str(artifacts / _shot(build, "subgraph")))
        _assert_report_is_shown_and_covers_nothing(layout, build)
        assert f"{line['computed']}/{line['evaluated']} steps computed" in layout["text"]["summaries"][0]
        frontend.evaluate("() => { const c = window.app.canvas; c.setGraph?.(window.app.rootGraph ?? window.app.graph); c.setDirty(true, true); }")
        assert frontend.evaluate("() => window.app.canvas.graph === (window.app.rootGraph ?? window.app.graph)")
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
            for (const detail of [null, {}, "text", { node: 999, report }, { node: "8", report }, { node: "8:3", report }, { node: cacheId },
                                  { node: String(cacheId), report: "text" }])
                send(detail);
            const sampler = window.app.graph.getNodeById(8);
            const untouched = !sampler.cachekit && !sampler.cachekitReport && window.app.graph.getNodeById(cacheId).cachekit === undefined
                && document.querySelectorAll(".cachekit-run-report").length === 0;
            send({ node: String(cacheId), report: { steps: "not a list", estimated_speedup: "fast", unit: 3,
                                                    calibration: { ratios: { cond: "x" }, file: "<b>x</b>" } } });
            window.app.canvas.draw(true, true);
            await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
            const el = document.querySelector(".cachekit-run-report");
            return { untouched, drawn: window.app.graph.getNodeById(cacheId).cachekitDrawn, markup: el?.querySelectorAll("b").length ?? -1 };
        }""",
        cache_id,
    )
    assert result["untouched"]
    assert result["drawn"]["summaries"] == ["0/0 steps computed · 1.00x est."] and result["drawn"]["curves"] == {}
    assert result["drawn"]["file"] == "<b>x</b>" and result["markup"] == 0  # text, never markup
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


def test_without_dom_widgets_the_report_is_drawn_on_the_canvas_below_the_widgets(frontend, build, artifacts):
    """A frontend without node.addDOMWidget: the report is drawn on the node, which grows to hold it."""
    if build.vue_nodes:
        pytest.skip("Nodes 2.0 always has DOM widgets, and canvas drawing does not reach its nodes")
    workflow = tiny_ui_workflow("first_block_cache_wan_t2v.json")
    (cache_id,) = cache_node_ids(workflow)
    frontend.load(workflow)
    before = len(frontend.messages)
    result = frontend.evaluate(
        """async (cacheId) => {
            const api = window.comfyAPI.api.api, node = window.app.graph.getNodeById(cacheId);
            node.addDOMWidget = undefined;  // this node, as a frontend without DOM widgets makes it
            const size = [node.size[0], node.size[1]];
            api.dispatchEvent(new CustomEvent("cachekit.run_report", { detail: { node: String(cacheId), prompt_id: "canvas",
                report: { method: "FirstBlockCache", steps: ["computed", "reused", "partial", ""], steps_computed: 1, steps_evaluated: 3,
                          units_total: 12, units_computed: 5, unit: "blocks", estimated_speedup: 2.4 } } }));
            window.app.canvas.draw(true, true);
            await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
            const bottom = Math.max(...node.widgets.map((w) => w.y + (w.computedHeight ?? window.LiteGraph.NODE_WIDGET_HEIGHT)));
            return { size, now: [node.size[0], node.size[1]], drawn: node.cachekitDrawn, widgets: node.widgets.map((w) => w.name), bottom };
        }""",
        cache_id,
    )
    frontend.screenshot_nodes([cache_id], artifacts / _shot(build, "canvas_fallback_node"))
    drawn = result["drawn"]
    assert drawn and drawn["renderer"] == "canvas", result
    assert drawn["summaries"] == ["1/3 steps computed · 5/12 blocks · 2.40x est."] and drawn["cells"] == [4]
    assert REPORT_WIDGET not in result["widgets"]
    assert result["now"][1] > result["size"][1]
    assert drawn["top"] >= result["bottom"] - TOLERANCE, result  # drawn below the last widget
    assert [m for m in frontend.messages[before:] if m["type"] in ("error", "pageerror", "warning")] == []


def test_runs_of_one_prompt_are_listed_together(frontend, build):
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
            return two;
        }""",
        cache_id,
    )
    layout = frontend.layout(cache_id)
    _assert_report_is_shown_and_covers_nothing(layout, build)
    assert drawn["summaries"] == ["run 1: 1/2 steps computed · 4/6 blocks · 1.50x est.", "run 2: 1/2 steps computed · 4/6 blocks · 1.50x est."]
    assert drawn["cells"] == [4, 4]
    assert layout["text"]["summaries"] == drawn["summaries"]
    assert layout["text"]["strips"] == [["computed", "reused", "none", "none"], ["none", "none", "computed", "partial"]]
    one = frontend.evaluate(
        """(cacheId) => { const api = window.comfyAPI.api.api, node = window.app.graph.getNodeById(cacheId);
            api.dispatchEvent(new CustomEvent("cachekit.run_report", { detail: { node: String(cacheId), prompt_id: "b",
                report: { method: "FirstBlockCache", steps: ["computed", "computed"], steps_computed: 2, steps_evaluated: 2,
                          units_total: 6, units_computed: 4, unit: "blocks", estimated_speedup: 1.5 } } }));
            window.app.canvas.draw(true, true); return node.cachekitDrawn; }""",
        cache_id,
    )
    assert one["summaries"] == ["2/2 steps computed · 4/6 blocks · 1.50x est."]  # a new prompt starts over
    _assert_report_is_shown_and_covers_nothing(frontend.layout(cache_id), build)
