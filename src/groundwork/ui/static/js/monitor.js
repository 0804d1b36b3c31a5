// Monitoring: the models with a prediction log, and one served alias: drift per feature over time,
// latency and errors over time, thresholds crossed, the reference and the served version's lineage.
import { echarts } from "./lazy.js";
import { api, clear, fmtNum, fmtTime, h, put, shortId, table, theme } from "./util.js";

const WINDOWS = [["", "all"], ["1h", "1 hour"], ["6h", "6 hours"], ["1d", "1 day"], ["7d", "7 days"]];
const DRIFT_LINES = 8;  // features drawn over time: the drifted ones first, then the largest PSI

export async function renderList(main) {
  const { models } = await api("/monitor");
  put(main, h("div", { class: "page-head" }, h("h1", null, "Monitor"), h("span", { class: "meta" }, `${models.length} model${models.length === 1 ? "" : "s"} with a prediction log`)));
  if (!models.length) {
    main.appendChild(h("p", { class: "empty" }, "No prediction log yet: ", h("code", null, "groundwork serve digits@production"), " logs every request it answers."));
    return;
  }
  main.appendChild(table(["model", "watch", { label: "segments", num: true }], models.map((m) => h("tr", null,
    h("td", null, m.name),
    h("td", null, [...Object.keys(m.aliases).map((a) => h("a", { href: `/monitor/${encodeURIComponent(`${m.name}@${a}`)}`, class: "badge alias" }, `@${a}`)),
      " ", h("a", { href: `/monitor/${encodeURIComponent(m.name)}`, class: "small" }, "all traffic")]),
    h("td", { class: "num" }, String(m.segments)))), "monitored"));
}

export async function renderTarget(main, ctx) {
  const target = ctx.params[0];
  const since = ctx.query.get("since") || "";
  const body = h("div");
  put(main, body);
  const { report } = await api(`/monitor/${encodeURIComponent(target)}`, { since });
  if (!ctx.isCurrent()) return undefined;
  const charts = [];
  const draw = async () => {
    charts.splice(0).forEach((c) => c.dispose());
    clear(body);
    drawHead(body, report, target, since);
    const driftBox = h("div", { class: "chart", id: "monitor-drift", role: "img", "aria-label": "PSI of each drawn feature per segment, with the threshold", style: { height: "300px" } });
    const latencyBox = h("div", { class: "chart", id: "monitor-latency", role: "img", "aria-label": "Latency p50 and p99 per segment", style: { height: "240px" } });
    const errorsBox = h("div", { class: "chart", id: "monitor-errors", role: "img", "aria-label": "Requests and error rate per segment", style: { height: "240px" } });
    const series = report.series || [];
    if (series.length) {
      put(body, h("h2", null, "Drift over time (PSI per segment)"), report.reference ? driftBox : h("p", { class: "muted" }, "No reference: no drift to draw."),
        h("h2", null, "Latency over time"), latencyBox, h("h2", null, "Requests and errors over time"), errorsBox);
    }
    drawFeatures(body, report);
    if (!series.length) return;
    const lib = await echarts();
    if (!ctx.isCurrent()) return;
    if (report.reference) charts.push(driftChart(lib, driftBox, report));
    charts.push(latencyChart(lib, latencyBox, series), errorsChart(lib, errorsBox, series));
  };
  await draw();
  const redraw = () => draw();
  window.addEventListener("gw-theme", redraw);
  return () => { window.removeEventListener("gw-theme", redraw); charts.forEach((c) => c.dispose()); };
}

function drawHead(body, report, target, since) {
  const t = report.traffic || {};
  const lat = t.latency_ms || {};
  const versions = Object.keys(t.versions || {}).map((v) => `v${v}`).join(", ") || "–";
  const windowLinks = WINDOWS.map(([value, label]) => (value === since
    ? h("strong", { class: "small" }, label)
    : h("a", { href: `/monitor/${encodeURIComponent(target)}${value ? `?since=${value}` : ""}`, class: "small" }, label)));
  const servedRef = report.route ? `${report.model}@${report.route}` : `${report.model}/${report.version}`;
  put(body,
    h("div", { class: "page-head" }, h("h1", null, target),
      h("span", { class: "meta" }, `version ${report.version} now · answered by ${versions} · ${report.window.segments} segment${report.window.segments === 1 ? "" : "s"}`),
      h("a", { href: `/lineage?ref=${encodeURIComponent(servedRef)}`, id: "monitor-lineage" }, "lineage of the served version"),
      h("a", { href: `/models/${encodeURIComponent(report.model)}` }, "model page")),
    h("p", { class: "muted" }, "Window: ", windowLinks.flatMap((el, i) => (i ? [" · ", el] : [el]))),
    (report.window.lost || []).map((lost) => h("p", { class: "error-box", dataset: { lost: lost.id } },
      `A segment was lost: its server stopped before closing it (up to ${lost.requests} requests, last refreshed ${fmtTime(lost.updated_at)}).`)),
    (report.notes || []).map((n) => h("p", { class: "muted" }, n)),
    h("div", { class: "chips", id: "monitor-traffic" },
      chip("requests", t.requests !== undefined ? t.requests.toLocaleString() : "–"),
      chip("throughput", t.throughput_rps !== undefined ? `${fmtNum(t.throughput_rps)} req/s` : "–"),
      chip("error rate", t.error_rate !== undefined ? `${(100 * t.error_rate).toFixed(2)}%` : "–"),
      chip("latency p50", lat.p50 != null ? `${fmtNum(lat.p50)} ms` : "–"),
      chip("latency p99", lat.p99 != null ? `${fmtNum(lat.p99)} ms` : "–")),
    h("h2", null, "Thresholds crossed"),
    report.crossings.length
      ? h("ul", { id: "monitor-crossings" }, report.crossings.map((c) => h("li", { class: "crossing" }, c)))
      : h("p", { id: "monitor-crossings", class: "muted" }, "None: no feature drifted, errors and latency are within their thresholds."),
    h("h2", null, "Reference"),
    referenceBlock(report));
}

function chip(label, value) {
  return h("span", { class: "chip", dataset: { metric: label } }, h("strong", null, label), " ", value);
}

function referenceBlock(report) {
  const ref = report.reference;
  if (!ref) return h("p", { class: "muted", id: "monitor-reference" }, report.reference_error || "No reference.");
  const how = ref.source === "lineage" ? "found through lineage" : "given";
  const path = (ref.path || []).map((step) => {
    const label = step.type === "artifact" ? h("a", { href: `/artifacts/${step.id.slice(9)}`, class: "mono" }, step.label)
      : step.type === "run" ? h("a", { href: `/runs/${step.id.slice(4)}` }, step.label) : h("span", null, step.label);
    return label;
  });
  return h("div", { id: "monitor-reference" },
    h("p", null, `${ref.description}: ${ref.rows.toLocaleString()} rows, ${how}`, ref.target ? ` (target column ${ref.target})` : "",
      ref.digest ? [" · ", h("a", { href: `/artifacts/${ref.digest}`, class: "mono" }, shortId(ref.digest))] : null),
    path.length ? h("p", { class: "small muted", id: "monitor-path" }, "made from: ", path.flatMap((el, i) => (i ? [" ← ", el] : [el]))) : null);
}

function drawFeatures(body, report) {
  const drift = report.drift || { features: [] };
  const rows = [...drift.features].sort((a, b) => (b.drifted - a.drifted) || ((b.psi || 0) - (a.psi || 0)));
  if (drift.prediction) rows.unshift(drift.prediction);
  if (!rows.length) return;
  const n = (v) => (v === null || v === undefined ? "–" : fmtNum(v));
  put(body, h("h2", null, "Drift per feature"), table(["feature", { label: "rows", num: true }, { label: "PSI", num: true }, { label: "KS", num: true },
    { label: "Wasserstein (sd)", num: true }, { label: "chi² p", num: true }, "drifted"], rows.map((f) => h("tr", { dataset: { feature: f.name, drifted: String(f.drifted) } },
    h("td", { class: "mono" }, f.name), h("td", { class: "num" }, f.rows.toLocaleString()), h("td", { class: "num" }, n(f.psi)),
    h("td", { class: "num" }, n(f.ks)), h("td", { class: "num" }, n(f.wasserstein)), h("td", { class: "num" }, n(f.chi2_pvalue)),
    h("td", null, f.drifted ? h("span", { class: "badge failed" }, "drifted") : (f.note || "no")))), "monitor-features"));
}

function baseOption(series, yName) {
  return {
    backgroundColor: "transparent",
    animation: false,
    tooltip: { trigger: "axis" },
    xAxis: { type: "time", name: "segment end" },
    yAxis: { type: "value", name: yName, scale: true },
    grid: { left: 60, right: 30, top: 40, bottom: 40 },
    series,
  };
}

function driftChart(lib, el, report) {
  const chart = lib.init(el, theme() === "dark" ? "dark" : null, { renderer: "canvas" });
  const features = [...report.drift.features].sort((a, b) => (b.drifted - a.drifted) || ((b.psi || 0) - (a.psi || 0)))
    .slice(0, DRIFT_LINES).map((f) => f.name);
  const threshold = report.thresholds.psi;
  const lines = features.map((name, i) => ({
    name, type: "line", showSymbol: true, symbolSize: 5,
    data: report.series.filter((p) => p.drift && p.drift[name]).map((p) => [p.ts * 1000, p.drift[name].psi]),
    markLine: i === 0 ? { silent: true, symbol: "none", lineStyle: { type: "dashed", color: "#dc2626" }, data: [{ yAxis: threshold, name: "threshold" }], label: { formatter: `PSI ${threshold}` } } : undefined,
  }));
  chart.setOption({ ...baseOption(lines, "PSI"), legend: { data: features, type: "scroll" } });
  return chart;
}

function latencyChart(lib, el, series) {
  const chart = lib.init(el, theme() === "dark" ? "dark" : null, { renderer: "canvas" });
  const line = (name, key) => ({ name, type: "line", showSymbol: true, symbolSize: 5, data: series.map((p) => [p.ts * 1000, p.latency_ms[key]]) });
  chart.setOption({ ...baseOption([line("p50", "p50"), line("p99", "p99")], "ms"), legend: { data: ["p50", "p99"] } });
  return chart;
}

function errorsChart(lib, el, series) {
  const chart = lib.init(el, theme() === "dark" ? "dark" : null, { renderer: "canvas" });
  const option = baseOption([
    { name: "requests", type: "bar", data: series.map((p) => [p.ts * 1000, p.requests]) },
    { name: "error rate %", type: "line", yAxisIndex: 1, showSymbol: true, symbolSize: 5, data: series.map((p) => [p.ts * 1000, 100 * p.error_rate]) },
  ], "requests");
  option.yAxis = [{ type: "value", name: "requests" }, { type: "value", name: "error %", min: 0 }];
  option.legend = { data: ["requests", "error rate %"] };
  chart.setOption(option);
  return chart;
}
