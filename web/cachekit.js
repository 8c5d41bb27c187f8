// CacheKit frontend extension: shows each CacheKit node's last run report inside the node.
//
// After every sampling run the backend (nodes/ui_report.py) sends "cachekit.run_report" with the
// cache node's execution id ("12", or "5:12" inside a subgraph), the prompt id and the report. The
// node then shows, below its own widgets:
//   - one line per sampling run of the prompt: computed/evaluated steps, computed/total units and the
//     estimated speedup, with a strip of one cell per step (computed, reused, partial, not evaluated);
//   - for MagCache Calibrate: the recorded ratio curve per CFG branch (cond, uncond) over schedule
//     progress, and the name of the file written.
//
// The report is a DOM widget of the node (the frontend's node.addDOMWidget), added when the first
// report arrives: it takes its own layout space, so it covers no other widget, in the classic canvas
// renderer (the frontend lays it out like a text box and grows the node) and in Nodes 2.0 (the
// Vue-rendered nodes, where it is a row of the node). It is never saved with the workflow nor sent
// with a prompt. Its colours are the palette's CSS variables, so they follow the palette live. A
// frontend without addDOMWidget gets the same report drawn on the canvas below the widgets, the node
// grown to hold it.
//
// Only nodes of the "CacheKit" category are touched. Every frontend API is used behind optional
// chaining / try-catch, so a frontend without one of them just shows less, and logs no error.

const EXTENSION = "CacheKit.RunReport";
const EVENT = "cachekit.run_report";
const CATEGORY = "CacheKit";
const WIDGET_NAME = "cachekit_run_report";
const WIDGET_TYPE = "cachekit-run-report";
const MAX_RUNS = 4; // runs of one prompt kept on a node (e.g. two samplers sharing one cache)

const PAD = 8;
const LINE = 14;
const STRIP = 8;
const CURVE = 84;
const AXIS = 34; // width of the curve's value labels
const MIN_WIDTH = 320;
const MARGIN = 6; // the DOM widget's margin inside the node (classic renderer)
const STATUS_COLORS = { computed: "#4a90d9", reused: "#3cb371", partial: "#d9a84a" };
const BRANCH_COLORS = { cond: "#4a90d9", uncond: "#e0803a" };
// the frontend's colour palette sets these CSS variables (light and dark themes)
const CSS = {
  text: "var(--input-text, #ddd)",
  dim: "var(--descrip-text, #999)",
  box: "var(--comfy-input-bg, #222)",
  none: "var(--border-color, #4e4e4e)",
};
const CANVAS_COLORS = { text: "#c8c8c8", dim: "#8a8a8a", box: "rgba(0,0,0,0.25)", none: "#3a3a3a" };

// ---------------------------------------------------------------------------------------- data

function isCacheKitCategory(category) {
  return typeof category === "string" && (category === CATEGORY || category.startsWith(CATEGORY + "/"));
}

function isCacheKitNode(node) {
  return Boolean(node?.constructor?.cachekit) || isCacheKitCategory(node?.constructor?.nodeData?.category) || isCacheKitCategory(node?.category);
}

function num(value, fallback = 0) {
  const n = Number(value);
  return Number.isFinite(n) ? n : fallback;
}

function stepsOf(report) {
  return Array.isArray(report?.steps) ? report.steps.map((s) => (typeof s === "string" && STATUS_COLORS[s] ? s : "")) : [];
}

function calibrationOf(node) {
  const runs = node?.cachekit?.runs ?? [];
  for (let i = runs.length - 1; i >= 0; i--) {
    const calibration = runs[i]?.report?.calibration;
    if (calibration && typeof calibration === "object") return calibration;
  }
  return null;
}

function curvesOf(calibration) {
  const ratios = calibration?.ratios && typeof calibration.ratios === "object" ? calibration.ratios : {};
  const curves = {};
  for (const branch of ["cond", "uncond"]) {
    if (Array.isArray(ratios[branch]) && ratios[branch].length) curves[branch] = ratios[branch].map((v) => num(v, 1));
  }
  return curves;
}

function summaryText(report, index, count) {
  const computed = num(report?.steps_computed);
  const evaluated = num(report?.steps_evaluated, num(report?.total_steps));
  const speedup = num(report?.estimated_speedup, 1).toFixed(2);
  const unit = typeof report?.unit === "string" && report.unit ? report.unit : "blocks";
  const prefix = count > 1 ? `run ${index + 1}: ` : "";
  const units = num(report?.units_total) ? ` · ${num(report?.units_computed)}/${num(report?.units_total)} ${unit}` : "";
  return `${prefix}${computed}/${evaluated} steps computed${units} · ${speedup}x est.`;
}

function noteOf(report) {
  // the calibration's note ("ratios saved to ...") is shown with its curves instead
  return report?.note && !report?.calibration ? String(report.note) : "";
}

function panelHeight(node) {
  const runs = node?.cachekit?.runs ?? [];
  if (!runs.length) return 0;
  let height = PAD / 2 + runs.length * (LINE + STRIP + 6) + LINE; // runs + legend
  height += runs.filter((run) => noteOf(run.report)).length * LINE;
  if (calibrationOf(node)) height += CURVE + LINE + 8;
  return height + PAD / 2;
}

/** Where the curves' points go: x in [0, 1] (schedule progress), y in [0, 1] from the top. */
function curveGeometry(calibration) {
  const curves = curvesOf(calibration);
  const values = Object.values(curves).flat().concat([1]);
  let low = Math.min(...values);
  let high = Math.max(...values);
  const margin = Math.max((high - low) * 0.08, 1e-3);
  low -= margin;
  high += margin;
  const progress = Array.isArray(calibration?.progress) ? calibration.progress : [];
  const px = (i, n) => Math.min(1, Math.max(0, progress.length === n ? num(progress[i], i / Math.max(1, n - 1)) : i / Math.max(1, n - 1)));
  const py = (v) => 1 - (num(v, 1) - low) / (high - low);
  const points = {};
  for (const [branch, curve] of Object.entries(curves)) points[branch] = curve.map((v, i) => [px(i, curve.length), py(v)]);
  return { points, low, high, one: py(1) };
}

function emptyDrawn() {
  return { summaries: [], notes: [], cells: [], curves: {}, file: null, renderer: null };
}

// ---------------------------------------------------------------------------------------- DOM widget

const SVG_NS = "http://www.w3.org/2000/svg";

function el(tag, style, text) {
  const element = document.createElement(tag);
  if (style) element.style.cssText = style;
  if (text != null) element.textContent = text;
  return element;
}

function svg(tag, attributes) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

const ELLIPSIS = "white-space:nowrap;overflow:hidden;text-overflow:ellipsis;";

function legendElement(names, colors) {
  const legend = el("div", `display:flex;gap:10px;height:${LINE}px;line-height:${LINE}px;font-size:10px;color:${CSS.dim};min-width:0;`);
  legend.dataset.cachekit = "legend";
  for (const name of names) {
    const item = el("span", "display:inline-flex;align-items:center;gap:3px;");
    item.append(el("span", `display:inline-block;width:8px;height:8px;background:${colors[name]};`), el("span", null, name));
    legend.append(item);
  }
  return legend;
}

function curvesElement(calibration, drawn) {
  const { points, low, high, one } = curveGeometry(calibration);
  const box = el("div", `position:relative;height:${CURVE}px;margin-top:4px;background:${CSS.box};font-size:9px;color:${CSS.dim};`);
  box.dataset.cachekit = "curves";
  const label = (text, top) => {
    const item = el("span", `position:absolute;left:3px;top:${top}px;line-height:10px;`, text);
    box.append(item);
  };
  label(high.toFixed(2), 2);
  label(low.toFixed(2), CURVE - 12);
  if (one > 0.15 && one < 0.85) label("1", Math.round(4 + one * (CURVE - 8)) - 5);
  // the plot stretches with the node: a 1000 x 1000 view box, strokes and points kept in screen pixels
  const plot = svg("svg", { viewBox: "0 0 1000 1000", preserveAspectRatio: "none" });
  plot.style.cssText = `position:absolute;left:${AXIS}px;right:6px;top:4px;bottom:4px;width:calc(100% - ${AXIS + 6}px);height:${CURVE - 8}px;overflow:visible;`;
  plot.append(svg("line", {
    x1: 0, x2: 1000, y1: one * 1000, y2: one * 1000, stroke: CSS.dim, "stroke-width": 1, "stroke-dasharray": "3 3",
    "vector-effect": "non-scaling-stroke", "data-cachekit": "one",
  }));
  for (const [branch, curve] of Object.entries(points)) {
    const coords = curve.map(([x, y]) => `${(x * 1000).toFixed(1)},${(y * 1000).toFixed(1)}`);
    plot.append(svg("polyline", {
      points: coords.join(" "), fill: "none", stroke: BRANCH_COLORS[branch], "stroke-width": 1.5,
      "stroke-linejoin": "round", "vector-effect": "non-scaling-stroke", "data-cachekit": `curve-${branch}`,
    }));
    if (curve.length <= 60) {
      // a zero-length path with square caps is a 3 px square at each point
      plot.append(svg("path", {
        d: coords.map((c) => `M${c}h0`).join(""), stroke: BRANCH_COLORS[branch], "stroke-width": 3.5, "stroke-linecap": "square",
        fill: "none", "vector-effect": "non-scaling-stroke", "data-cachekit": `points-${branch}`,
      }));
    }
    drawn.curves[branch] = curve.length;
  }
  box.append(plot);
  return box;
}

function renderElement(node, element) {
  const runs = node.cachekit?.runs ?? [];
  const drawn = emptyDrawn();
  drawn.renderer = "dom";
  element.replaceChildren();
  element.style.height = element.style.minHeight = `${panelHeight(node)}px`;
  runs.forEach((run, i) => {
    const text = summaryText(run.report, i, runs.length);
    const line = el("div", `${ELLIPSIS}height:${LINE}px;line-height:${LINE}px;font-size:11px;color:${CSS.text};`, text);
    line.dataset.cachekit = "summary";
    line.title = text;
    const steps = stepsOf(run.report);
    const strip = el("div", `display:flex;gap:${steps.length <= 80 ? 1 : 0}px;height:${STRIP}px;margin:1px 0 ${6 - 1}px 0;`);
    strip.dataset.cachekit = "strip";
    for (const status of steps) {
      const cell = el("span", `flex:1 1 0;min-width:0;height:100%;background:${STATUS_COLORS[status] ?? CSS.none};`);
      cell.dataset.status = status || "none";
      strip.append(cell);
    }
    element.append(line, strip);
    drawn.summaries.push(text);
    drawn.cells.push(steps.length);
    const note = noteOf(run.report);
    if (note) {
      const noteLine = el("div", `${ELLIPSIS}height:${LINE}px;line-height:${LINE}px;font-size:10px;color:${CSS.dim};`, note);
      noteLine.dataset.cachekit = "note";
      noteLine.title = note;
      element.append(noteLine);
      drawn.notes.push(note);
    }
  });
  element.append(legendElement(["computed", "reused", "partial"], STATUS_COLORS));
  const calibration = calibrationOf(node);
  if (calibration) {
    element.append(curvesElement(calibration, drawn));
    const footer = el("div", `display:flex;justify-content:space-between;gap:8px;margin-top:4px;height:${LINE}px;`);
    const file = String(calibration.file ?? "");
    const name = el("span", `${ELLIPSIS}font-size:10px;line-height:${LINE}px;color:${CSS.text};min-width:0;`, file);
    name.dataset.cachekit = "file";
    name.title = file;
    footer.append(legendElement(Object.keys(drawn.curves), BRANCH_COLORS), name);
    element.append(footer);
    drawn.file = file;
  }
  node.cachekitDrawn = drawn; // what was shown last (read by the browser tests)
}

function newElement() {
  const element = document.createElement("div");
  element.className = "cachekit-run-report";
  element.dataset.cachekit = "report";
  element.style.cssText =
    `box-sizing:border-box;overflow:hidden;padding:${PAD / 2}px 2px;font-family:sans-serif;` +
    "user-select:none;display:flex;flex-direction:column;flex:none;";
  return element;
}

/** The node's report widget, added on its first report; null where the frontend has no DOM widgets. */
function reportWidget(node) {
  const existing = node.cachekitWidget;
  if (existing && (node.widgets ?? []).includes(existing)) return existing;
  if (typeof node.addDOMWidget !== "function") return null;
  const element = newElement();
  const height = () => panelHeight(node) + 2 * MARGIN;
  const widget = node.addDOMWidget(WIDGET_NAME, WIDGET_TYPE, element, {
    serialize: false, // never in the saved workflow nor in the prompt
    hideInPanel: true, // not an input: not listed in the properties panel (which would take the element away)
    hideOnZoom: true,
    margin: MARGIN,
    getValue: () => "",
    setValue: () => {},
    getMinHeight: height,
    getMaxHeight: height,
  });
  if (!widget) return null;
  widget.serialize = false;
  widget.label = "";
  node.cachekitWidget = widget;
  return widget;
}

// ---------------------------------------------------------------------------------------- canvas (fallback)

function canvasColors() {
  // the frontend's colour palette sets these LiteGraph constants (light and dark themes)
  const lg = globalThis.LiteGraph;
  const pick = (value, fallback) => (typeof value === "string" && value ? value : fallback);
  return {
    text: pick(lg?.WIDGET_TEXT_COLOR, CANVAS_COLORS.text),
    dim: pick(lg?.WIDGET_SECONDARY_TEXT_COLOR, CANVAS_COLORS.dim),
    box: pick(lg?.WIDGET_BGCOLOR, CANVAS_COLORS.box),
    none: CANVAS_COLORS.none,
  };
}

function fitText(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let cut = text;
  while (cut.length > 1 && ctx.measureText(cut + "…").width > width) cut = cut.slice(0, -1);
  return cut + "…";
}

function drawLegend(ctx, colors, x, y, names, palette) {
  let cx = x;
  for (const name of names) {
    ctx.fillStyle = colors[name];
    ctx.fillRect(cx, y - 7, 8, 8);
    ctx.fillStyle = palette.dim;
    ctx.fillText(name, cx + 11, y);
    cx += 11 + ctx.measureText(name).width + 10;
  }
}

function drawPanel(node, ctx) {
  const runs = node.cachekit?.runs ?? [];
  if (!runs.length || node.flags?.collapsed) return;
  const palette = canvasColors();
  const width = num(node.size?.[0], MIN_WIDTH);
  const inner = width - 2 * PAD;
  let y = Math.max(0, num(node.size?.[1]) - panelHeight(node)) + PAD / 2;
  const drawn = emptyDrawn();
  drawn.renderer = "canvas";
  drawn.top = y - PAD / 2; // where the panel starts, in node coordinates
  ctx.font = "11px sans-serif";
  ctx.textBaseline = "alphabetic";
  runs.forEach((run, i) => {
    const text = summaryText(run.report, i, runs.length);
    ctx.fillStyle = palette.text;
    ctx.fillText(fitText(ctx, text, inner), PAD, y + 11);
    drawn.summaries.push(text);
    const steps = stepsOf(run.report);
    const cell = inner / Math.max(1, steps.length);
    steps.forEach((status, s) => {
      ctx.fillStyle = STATUS_COLORS[status] ?? palette.none;
      ctx.fillRect(PAD + s * cell, y + LINE + 1, Math.max(1, cell - (cell > 3 ? 1 : 0)), STRIP);
    });
    drawn.cells.push(steps.length);
    y += LINE + STRIP + 6;
    const note = noteOf(run.report);
    if (note) {
      drawn.notes.push(note);
      ctx.font = "10px sans-serif";
      ctx.fillStyle = palette.dim;
      ctx.fillText(fitText(ctx, note, inner), PAD, y + 9);
      y += LINE;
    }
    ctx.font = "11px sans-serif";
  });
  ctx.font = "10px sans-serif";
  drawLegend(ctx, STATUS_COLORS, PAD, y + 10, ["computed", "reused", "partial"], palette);
  y += LINE;
  const calibration = calibrationOf(node);
  if (calibration) {
    y += 4;
    const { points, low, high, one } = curveGeometry(calibration);
    ctx.fillStyle = palette.box;
    ctx.fillRect(PAD, y, inner, CURVE);
    const left = PAD + AXIS;
    const plotWidth = inner - AXIS - 6;
    const X = (x) => left + x * plotWidth;
    const Y = (v) => y + 4 + v * (CURVE - 8);
    ctx.strokeStyle = palette.dim;
    ctx.lineWidth = 1;
    ctx.setLineDash?.([3, 3]);
    ctx.beginPath();
    ctx.moveTo(left, Y(one));
    ctx.lineTo(left + plotWidth, Y(one));
    ctx.stroke();
    ctx.setLineDash?.([]);
    ctx.fillStyle = palette.dim;
    ctx.font = "9px sans-serif";
    ctx.fillText(high.toFixed(2), PAD + 3, y + 11);
    ctx.fillText(low.toFixed(2), PAD + 3, y + CURVE - 4);
    for (const [branch, curve] of Object.entries(points)) {
      ctx.strokeStyle = ctx.fillStyle = BRANCH_COLORS[branch];
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      curve.forEach(([px, py], i) => (i ? ctx.lineTo(X(px), Y(py)) : ctx.moveTo(X(px), Y(py))));
      ctx.stroke();
      if (curve.length <= 60) curve.forEach(([px, py]) => ctx.fillRect(X(px) - 1.5, Y(py) - 1.5, 3, 3));
      drawn.curves[branch] = curve.length;
    }
    y += CURVE + 4;
    ctx.font = "10px sans-serif";
    drawLegend(ctx, BRANCH_COLORS, PAD, y + 10, Object.keys(drawn.curves), palette);
    const file = String(calibration.file ?? "");
    ctx.fillStyle = palette.text;
    const label = fitText(ctx, file, inner - 120);
    ctx.fillText(label, PAD + inner - ctx.measureText(label).width, y + 10);
    drawn.file = file;
  }
  node.cachekitDrawn = drawn;
}

// ---------------------------------------------------------------------------------------- wiring

function resolveFrontend() {
  const api = globalThis.comfyAPI?.api?.api;
  const app = globalThis.comfyAPI?.app?.app ?? globalThis.app;
  return { app, api };
}

function nodeByExecutionId(app, id) {
  const parts = String(id ?? "").split(":").filter((p) => p !== "");
  let graph = app?.rootGraph ?? app?.graph;
  let node = null;
  for (let i = 0; i < parts.length; i++) {
    const key = /^\d+$/.test(parts[i]) ? Number(parts[i]) : parts[i];
    node = graph?.getNodeById?.(key) ?? graph?.getNodeById?.(parts[i]) ?? null;
    if (!node) return null;
    if (i < parts.length - 1) graph = node.subgraph;
  }
  return node;
}

function fitNode(node) {
  try {
    // Nodes 2.0 sizes a node from its DOM; setting a size there only fights its layout
    if (globalThis.LiteGraph?.vueNodesMode) return;
    const wanted = node.computeSize?.();
    // node.size is an array, a typed array or (newer frontends) an array-like of the layout store
    if (!wanted || node.size == null || typeof node.size !== "object" || node.size.length < 2) return;
    const size = [Math.max(num(node.size[0]), num(wanted[0]), MIN_WIDTH), Math.max(num(node.size[1]), num(wanted[1]))];
    if (typeof node.setSize === "function") node.setSize(size);
    else {
      node.size[0] = size[0];
      node.size[1] = size[1];
    }
  } catch {
    // an old or new frontend without these node APIs: the node keeps its size
  }
}

function show(node) {
  let widget = null;
  try {
    widget = reportWidget(node);
  } catch {
    widget = null;
  }
  if (widget?.element) {
    node.cachekit.canvas = false;
    renderElement(node, widget.element);
  } else {
    node.cachekit.canvas = true; // drawn by onDrawForeground
    node.cachekitDrawn = null;
  }
  fitNode(node);
}

function onReport(app, event) {
  try {
    const detail = event?.detail;
    if (!detail || typeof detail !== "object" || !detail.report || typeof detail.report !== "object") return;
    const node = nodeByExecutionId(app, detail.node);
    if (!node || !isCacheKitNode(node)) return;
    const promptId = detail.prompt_id ?? null;
    const run = { promptId, samplerNode: detail.sampler_node ?? null, report: detail.report };
    const state = node.cachekit;
    if (state && promptId && state.promptId === promptId) {
      state.runs.push(run);
      if (state.runs.length > MAX_RUNS) state.runs.shift();
    } else {
      node.cachekit = { promptId, runs: [run] };
    }
    node.cachekitReport = detail.report; // the latest report, for scripts and tests
    show(node);
    node.setDirtyCanvas?.(true, true);
    app?.canvas?.setDirty?.(true, true);
  } catch {
    // never let a report break the page
  }
}

function patchNodeType(nodeType) {
  const proto = nodeType?.prototype;
  if (!proto || nodeType.cachekit) return;
  nodeType.cachekit = true;
  // the canvas fallback only (frontends without DOM widgets): room below the widgets, and the drawing
  const computeSize = proto.computeSize;
  proto.computeSize = function (out) {
    const size = typeof computeSize === "function" ? computeSize.apply(this, arguments) : [num(this.size?.[0]), num(this.size?.[1])];
    try {
      if (this.cachekit?.canvas && size) {
        size[1] = num(size[1]) + panelHeight(this);
        size[0] = Math.max(num(size[0]), MIN_WIDTH);
      }
    } catch {
      // keep the frontend's size
    }
    return size;
  };
  const onDrawForeground = proto.onDrawForeground;
  proto.onDrawForeground = function (ctx) {
    const result = typeof onDrawForeground === "function" ? onDrawForeground.apply(this, arguments) : undefined;
    if (ctx && this.cachekit?.canvas) {
      try {
        ctx.save();
        drawPanel(this, ctx);
      } catch {
        // drawing is best effort
      } finally {
        ctx.restore?.();
      }
    }
    return result;
  };
}

const { app, api } = resolveFrontend();

try {
  app?.registerExtension?.({
    name: EXTENSION,
    setup() {
      try {
        api?.addEventListener?.(EVENT, (event) => onReport(app, event));
      } catch {
        // no server messages in this frontend: the nodes just show nothing
      }
    },
    async beforeRegisterNodeDef(nodeType, nodeData) {
      try {
        if (isCacheKitCategory(nodeData?.category)) patchNodeType(nodeType);
      } catch {
        // leave the node as the frontend made it
      }
    },
  });
} catch {
  // no extension API: nothing to do
}
