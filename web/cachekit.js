// CacheKit frontend extension: shows each CacheKit node's last run report on the node.
//
// After every sampling run the backend (nodes/ui_report.py) sends "cachekit.run_report" with the
// cache node's execution id ("12", or "5:12" inside a subgraph), the prompt id and the report. The
// node then shows, inside its own area (the node grows to fit):
//   - one line per sampling run of the prompt: computed/evaluated steps, computed/total units and the
//     estimated speedup, with a strip of one cell per step (computed, reused, partial, not evaluated);
//   - for MagCache Calibrate: the recorded ratio curve per CFG branch (cond, uncond) over schedule
//     progress, and the name of the file written.
// Only nodes of the "CacheKit" category are touched. Every frontend API is used behind optional
// chaining / try-catch, so a frontend without one of them just shows less, and logs no error.

const EXTENSION = "CacheKit.RunReport";
const EVENT = "cachekit.run_report";
const CATEGORY = "CacheKit";
const MAX_RUNS = 4; // runs of one prompt kept on a node (e.g. two samplers sharing one cache)

const PAD = 8;
const LINE = 14;
const STRIP = 8;
const CURVE = 84;
const MIN_WIDTH = 320;
const COLORS = {
  computed: "#4a90d9",
  reused: "#3cb371",
  partial: "#d9a84a",
  "": "#3a3a3a",
  cond: "#4a90d9",
  uncond: "#e0803a",
  text: "#c8c8c8",
  dim: "#8a8a8a",
  box: "rgba(0,0,0,0.25)",
};

function useThemeColors() {
  // the frontend's colour palette sets these LiteGraph constants (light and dark themes)
  const lg = globalThis.LiteGraph;
  const pick = (value, fallback) => (typeof value === "string" && value ? value : fallback);
  COLORS.text = pick(lg?.WIDGET_TEXT_COLOR, "#c8c8c8");
  COLORS.dim = pick(lg?.WIDGET_SECONDARY_TEXT_COLOR, "#8a8a8a");
  COLORS.box = pick(lg?.WIDGET_BGCOLOR, "rgba(0,0,0,0.25)");
}

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

function calibrationOf(node) {
  const runs = node?.cachekit?.runs ?? [];
  for (let i = runs.length - 1; i >= 0; i--) {
    const calibration = runs[i]?.report?.calibration;
    if (calibration && typeof calibration === "object") return calibration;
  }
  return null;
}

function summaryText(report, index, count) {
  const computed = num(report?.steps_computed);
  const evaluated = num(report?.steps_evaluated, num(report?.total_steps));
  const speedup = num(report?.estimated_speedup, 1).toFixed(2);
  const unit = report?.unit || "blocks";
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

// ---------------------------------------------------------------------------------------- drawing

function fitText(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let cut = text;
  while (cut.length > 1 && ctx.measureText(cut + "…").width > width) cut = cut.slice(0, -1);
  return cut + "…";
}

function drawStrip(ctx, steps, x, y, width) {
  const n = steps.length;
  if (!n) return 0;
  const cell = width / n;
  const gap = cell > 3 ? 1 : 0;
  steps.forEach((status, i) => {
    ctx.fillStyle = COLORS[status] ?? COLORS[""];
    ctx.fillRect(x + i * cell, y, Math.max(1, cell - gap), STRIP);
  });
  return n;
}

function drawLegend(ctx, x, y, names) {
  let cx = x;
  for (const name of names) {
    ctx.fillStyle = COLORS[name];
    ctx.fillRect(cx, y - 7, 8, 8);
    ctx.fillStyle = COLORS.dim;
    ctx.fillText(name, cx + 11, y);
    cx += 11 + ctx.measureText(name).width + 10;
  }
}

function drawCurves(ctx, calibration, x, y, width, height) {
  const ratios = calibration?.ratios && typeof calibration.ratios === "object" ? calibration.ratios : {};
  const branches = ["cond", "uncond"].filter((b) => Array.isArray(ratios[b]) && ratios[b].length);
  const drawn = {};
  ctx.fillStyle = COLORS.box;
  ctx.fillRect(x, y, width, height);
  if (!branches.length) return drawn;
  const values = branches.flatMap((b) => ratios[b].map((v) => num(v, 1))).concat([1]);
  let low = Math.min(...values);
  let high = Math.max(...values);
  const margin = Math.max((high - low) * 0.08, 1e-3);
  low -= margin;
  high += margin;
  const progress = Array.isArray(calibration.progress) ? calibration.progress : [];
  const left = x + 34;
  const plotWidth = width - 40;
  const px = (i, n) => {
    const p = progress.length === n ? num(progress[i], i / Math.max(1, n - 1)) : i / Math.max(1, n - 1);
    return left + Math.min(1, Math.max(0, p)) * plotWidth;
  };
  const py = (v) => y + 4 + (1 - (num(v, 1) - low) / (high - low)) * (height - 8);
  // reference line at ratio 1 and the axis labels
  ctx.strokeStyle = COLORS.dim;
  ctx.lineWidth = 1;
  ctx.setLineDash?.([3, 3]);
  ctx.beginPath();
  ctx.moveTo(left, py(1));
  ctx.lineTo(left + plotWidth, py(1));
  ctx.stroke();
  ctx.setLineDash?.([]);
  ctx.fillStyle = COLORS.dim;
  ctx.font = "9px sans-serif";
  ctx.fillText(high.toFixed(2), x + 3, y + 11);
  ctx.fillText(low.toFixed(2), x + 3, y + height - 4);
  ctx.fillText("1", x + 3, py(1) + 3);
  for (const branch of branches) {
    const curve = ratios[branch];
    ctx.strokeStyle = COLORS[branch];
    ctx.fillStyle = COLORS[branch];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    curve.forEach((v, i) => (i ? ctx.lineTo(px(i, curve.length), py(v)) : ctx.moveTo(px(i, curve.length), py(v))));
    ctx.stroke();
    if (curve.length <= 60) curve.forEach((v, i) => ctx.fillRect(px(i, curve.length) - 1.5, py(v) - 1.5, 3, 3));
    drawn[branch] = curve.length;
  }
  return drawn;
}

function drawPanel(node, ctx) {
  const runs = node.cachekit?.runs ?? [];
  if (!runs.length || node.flags?.collapsed) return;
  useThemeColors();
  const width = num(node.size?.[0], MIN_WIDTH);
  const inner = width - 2 * PAD;
  let y = Math.max(0, num(node.size?.[1]) - panelHeight(node)) + PAD / 2;
  const drawn = { summaries: [], notes: [], cells: [], curves: {}, file: null };
  ctx.font = "11px sans-serif";
  ctx.textBaseline = "alphabetic";
  runs.forEach((run, i) => {
    const text = summaryText(run.report, i, runs.length);
    ctx.fillStyle = COLORS.text;
    ctx.fillText(fitText(ctx, text, inner), PAD, y + 11);
    drawn.summaries.push(text);
    drawn.cells.push(drawStrip(ctx, Array.isArray(run.report?.steps) ? run.report.steps : [], PAD, y + LINE + 1, inner));
    y += LINE + STRIP + 6;
    const note = noteOf(run.report);
    if (note) {
      drawn.notes.push(note);
      ctx.font = "10px sans-serif";
      ctx.fillStyle = COLORS.dim;
      ctx.fillText(fitText(ctx, note, inner), PAD, y + 9);
      y += LINE;
    }
    ctx.font = "11px sans-serif";
  });
  ctx.font = "10px sans-serif";
  drawLegend(ctx, PAD, y + 10, ["computed", "reused", "partial"]);
  y += LINE;
  const calibration = calibrationOf(node);
  if (calibration) {
    y += 4;
    drawn.curves = drawCurves(ctx, calibration, PAD, y, inner, CURVE);
    y += CURVE + 4;
    ctx.font = "10px sans-serif";
    drawLegend(ctx, PAD, y + 10, Object.keys(drawn.curves));
    const file = String(calibration.file ?? "");
    ctx.fillStyle = COLORS.text;
    const label = fitText(ctx, file, inner - 120);
    ctx.fillText(label, PAD + inner - ctx.measureText(label).width, y + 10);
    drawn.file = file;
  }
  node.cachekitDrawn = drawn; // what was drawn last (read by the browser tests)
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
    const wanted = node.computeSize?.();
    if (!wanted || !Array.isArray(node.size) && !ArrayBuffer.isView(node.size)) return;
    const size = [Math.max(num(node.size[0]), num(wanted[0]), MIN_WIDTH), Math.max(num(node.size[1]), num(wanted[1]))];
    if (typeof node.setSize === "function") node.setSize(size);
    else {
      node.size[0] = size[0];
      node.size[1] = size[1];
    }
  } catch {
    // an old or new frontend without these node APIs: the panel may overlap, nothing else happens
  }
}

function onReport(app, event) {
  try {
    const detail = event?.detail;
    if (!detail || typeof detail !== "object" || !detail.report) return;
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
    fitNode(node);
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
  const computeSize = proto.computeSize;
  proto.computeSize = function (out) {
    const size = typeof computeSize === "function" ? computeSize.apply(this, arguments) : [num(this.size?.[0]), num(this.size?.[1])];
    try {
      const extra = panelHeight(this);
      if (extra && size) {
        size[1] = num(size[1]) + extra;
        if (this.cachekit?.runs?.length) size[0] = Math.max(num(size[0]), MIN_WIDTH);
      }
    } catch {
      // keep the frontend's size
    }
    return size;
  };
  const onDrawForeground = proto.onDrawForeground;
  proto.onDrawForeground = function (ctx) {
    const result = typeof onDrawForeground === "function" ? onDrawForeground.apply(this, arguments) : undefined;
    if (ctx && this.cachekit) {
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
