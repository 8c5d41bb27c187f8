// CacheKit frontend extension: shows each CacheKit node's last run report on the node.
// The backend sends "cachekit.run_report" with the node id after every sampling run.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EVENT = "cachekit.run_report";

function summary(report) {
  const speedup = Number(report.estimated_speedup || 1).toFixed(2);
  return `${report.method}: ${report.steps_computed}/${report.steps_evaluated} steps computed, ${speedup}x est.`;
}

function drawReport(node, ctx) {
  const report = node.cachekitReport;
  if (!report || !ctx) return;
  const steps = Array.isArray(report.steps) ? report.steps : [];
  const width = node.size[0] - 20;
  const top = node.size[1] + 6;
  ctx.save();
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#bbb";
  ctx.fillText(summary(report), 10, top + 10);
  const cell = steps.length ? Math.max(1, width / steps.length) : 0;
  steps.forEach((status, i) => {
    ctx.fillStyle = status === "computed" ? "#4a90d9" : status === "reused" ? "#3cb371" : status === "partial" ? "#d9a84a" : "#444";
    ctx.fillRect(10 + i * cell, top + 16, Math.max(1, cell - 1), 6);
  });
  ctx.restore();
}

app.registerExtension({
  name: "CacheKit.RunReport",
  setup() {
    api.addEventListener(EVENT, (event) => {
      const detail = event?.detail;
      const node = detail && app.graph?.getNodeById?.(Number(detail.node));
      if (!node) return;
      node.cachekitReport = detail.report;
      node.setDirtyCanvas?.(true, true);
    });
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.category !== "CacheKit") return;
    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      const result = onDrawForeground?.apply(this, arguments);
      drawReport(this, ctx);
      return result;
    };
  },
});
