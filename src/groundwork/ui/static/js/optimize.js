// The optimize report on an optimize run's page: the variants table and a speed-against-quality chart.
import { echarts as loadECharts } from "./lazy.js";
import { api, clear, errorBox, fmtNum, h, table, theme, put } from "./util.js";

const SPEED = /(throughput|per_s|qps|items|latency|p50|p95|p99|_ms$|speedup|speed)/i;
const QUALITY = /(^score$|acc|quality|f1|auc|error|loss|delta|drop)/i;
//: The columns of groundwork optimize's report (engines/optimize/report.py), in reading order.
const OPTIMIZE_COLUMNS = ["id", "engine", "precision", "sparsity", "threads", "batch", "latency_p50_ms", "latency_p99_ms",
  "throughput", "speedup", "score", "quality_change", "status", "reason"];

/** The list of variant rows in a report, wherever the optimizer put it. */
export function variantsOf(report) {
  if (Array.isArray(report)) return report;
  for (const key of ["variants", "candidates", "results", "rows", "table"]) {
    if (Array.isArray(report[key])) return report[key];
  }
  const arrays = Object.values(report).filter((v) => Array.isArray(v) && v.length && typeof v[0] === "object");
  return arrays[0] || [];
}

function flatten(row, prefix, out) {
  for (const [k, v] of Object.entries(row)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    else out[key] = v;
  }
  return out;
}

export async function renderReport(box, run) {
  const outputs = run.outputs || [];
  const reportLink = outputs.find((a) => /report\.json$/.test(a.name)) || outputs.find((a) => a.kind === "report" && /\.json$/.test(a.name));
  const image = outputs.find((a) => /\.png$/.test(a.name) && /speed|quality/.test(a.name)) || outputs.find((a) => /\.png$/.test(a.name));
  const markdown = outputs.find((a) => /report\.md$/.test(a.name));
  if (!reportLink && !image) {
    box.appendChild(h("p", { class: "empty" }, "This optimize run has no report (yet)."));
    return undefined;
  }
  let chart = null;
  if (reportLink) {
    const response = await fetch(`/api/v1/artifacts/${reportLink.digest}/raw`);
    if (!response.ok) throw new Error(`could not read ${reportLink.name} (HTTP ${response.status})`);
    const report = await response.json();
    const rows = variantsOf(report).map((r) => flatten(r, "", {}));
    let columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    if (columns.includes("engine") && columns.includes("precision")) columns = OPTIMIZE_COLUMNS.filter((c) => columns.includes(c));
    const chosen = report.chosen || report.best || report.selected || report.winner;
    const chosenName = chosen && typeof chosen === "object" ? chosen.name || chosen.variant : chosen;
    const nameKey = columns.find((c) => /^(name|variant|id)$/.test(c)) || columns[0];
    const hardware = report.hardware || {};
    put(box, h("h2", null, "Variants"),
      chosenName ? h("p", null, "Chosen: ", h("strong", null, String(chosenName)), report.choice_reason ? ` (${report.choice_reason})` : "") : null,
      report.metric ? h("p", { class: "muted" }, `Quality: ${report.metric} (${report.higher_is_better === false ? "lower" : "higher"} is better)`,
        report.baseline ? `, baseline ${report.baseline}${report.baseline_score !== undefined && report.baseline_score !== null ? ` = ${fmtNum(report.baseline_score)}` : ""}` : "",
        report.max_drop !== undefined ? `, largest drop allowed ${report.max_drop}` : "",
        hardware.cpu_model ? `; measured on ${hardware.cpu_model}` : "") : null,
      rows.length ? table(columns.map((c) => ({ label: c, num: rows.some((r) => typeof r[c] === "number") })), rows.map((r) => h("tr", { class: chosenName !== undefined && r[nameKey] === chosenName ? "selected" : null },
        columns.map((c) => h("td", { class: typeof r[c] === "number" ? "num mono" : "mono" }, r[c] === undefined || r[c] === null ? "" : typeof r[c] === "number" ? fmtNum(r[c]) : String(r[c]))))), "optimize-table") : h("p", { class: "muted" }, "The report lists no variants."));
    const numeric = (c) => rows.some((r) => typeof r[c] === "number");
    const speed = ["throughput", "latency_p50_ms"].find((c) => columns.includes(c) && numeric(c))
      || columns.find((c) => SPEED.test(c) && numeric(c));
    const quality = ["score"].find((c) => columns.includes(c) && numeric(c))
      || columns.find((c) => c !== speed && QUALITY.test(c) && numeric(c));
    if (speed && quality) {
      const el = h("div", { class: "chart tall", id: "speed-quality", role: "img", "aria-label": `${quality} against ${speed} for every variant` });
      put(box, h("h2", null, "Speed against quality"), el);
      const echarts = await loadECharts();
      chart = echarts.init(el, theme() === "dark" ? "dark" : null);
      chart.setOption({
        backgroundColor: "transparent", animation: false, aria: { enabled: true },
        grid: { left: 70, right: 90, top: 20, bottom: 50 },
        tooltip: { trigger: "item", formatter: (p) => `${p.data[2]}<br>${speed}: ${fmtNum(p.data[0])}<br>${quality}: ${fmtNum(p.data[1])}` },
        xAxis: { type: "value", name: speed, nameLocation: "middle", nameGap: 30, scale: true },
        yAxis: { type: "value", name: quality === "score" && report.metric ? report.metric : quality, nameLocation: "middle", nameGap: 50, scale: true },
        series: [{
          type: "scatter", symbolSize: 14,
          data: rows.filter((r) => typeof r[speed] === "number" && typeof r[quality] === "number").map((r) => [r[speed], r[quality], String(r[nameKey])]),
          label: { show: true, position: "right", formatter: (p) => p.data[2], fontSize: 11 },
          itemStyle: { color: (p) => (p.data[2] === String(chosenName) ? "#dc2626" : "#2563eb") },
        }],
      });
    }
  }
  if (image) put(box, h("h2", null, "Plot from the optimizer"), h("img", { src: `/api/v1/artifacts/${image.digest}/raw`, alt: `${image.name}`, style: { maxWidth: "100%" } }));
  if (markdown) {
    const pre = h("pre", { class: "code" }, "Loading…");
    put(box, h("details", null, h("summary", null, markdown.name), pre));
    api(`/artifacts/${markdown.digest}/preview`).then(({ preview }) => { put(clear(pre), preview.text || ""); }).catch((err) => clear(pre).appendChild(errorBox(err)));
  }
  return () => chart && chart.dispose();
}
