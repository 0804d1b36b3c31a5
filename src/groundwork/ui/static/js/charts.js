// Metric charts on Apache ECharts: zoom (refetching detail from the server), smoothing, log axis,
// x as step, relative time or wall time. Series arrive downsampled (LTTB) from /api/v1/series.
import { echarts as loadECharts } from "./lazy.js";
import { api, debounce, fmtDuration, fmtNum, h, mark, theme } from "./util.js";

export const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#ea580c", "#4f46e5", "#0d9488", "#be123c"];

/** Points to ask for: about one per horizontal pixel of the chart (device pixels), bounded. */
export function pointsFor(width) {
  return Math.max(400, Math.min(4000, Math.round((width || 600) * 2 * Math.min(2, window.devicePixelRatio || 1))));
}

/** The width a chart card will have in a grid of cards (before the card exists: for early fetches). */
export function cardWidth() {
  const main = document.getElementById("main");
  const width = (main ? main.clientWidth : window.innerWidth) - 40;
  const gap = 14;
  const columns = Math.max(1, Math.floor((width + gap) / (440 + gap)));
  return Math.floor((width - gap * (columns - 1)) / columns);
}

/** Fetch series for runs × keys in one request; returns {`${run}\u0000${key}`: series}. */
export async function fetchSeries(runIds, keys, points, range) {
  const body = await api("/series", {
    run: runIds.join(","), key: keys, points,
    min_step: range ? Math.floor(range[0]) : undefined, max_step: range ? Math.ceil(range[1]) : undefined,
  });
  const out = {};
  for (const s of body.series) out[`${s.run_id}\u0000${s.key}`] = s;
  return out;
}

/** 120000 -> "120k", 2500000 -> "2.5M" (axis labels stay short). */
function compact(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toFixed(2)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  return String(+v.toFixed(6));
}

function ema(values, weight) {
  if (!weight) return values;
  const out = new Array(values.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || !Number.isFinite(v)) { out[i] = null; continue; }
    last = last * weight + (1 - weight) * v;
    n++;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}

/**
 * One chart of one metric key for one or more runs.
 * runs: [{id, name, color}]; options: {xMode: "step"|"relative"|"wall", logY, smoothing}.
 */
export class MetricChart {
  constructor(container, key, runs, options) {
    this.container = container;
    this.key = key;
    this.runs = runs;
    this.options = { xMode: "step", logY: false, smoothing: 0, ...(options || {}) };
    this.data = {};  // run id -> series {step, value, timestamp, total, method}
    this.chart = null;
    this.detail = null;  // {range: [lo, hi], data: {run id -> series}} after a zoom
    this.disposed = false;
    this.onZoom = debounce(() => this.zoomed(), 250);
    this.onTheme = () => this.rebuild();
    window.addEventListener("gw-theme", this.onTheme);
    this.resizeObserver = new ResizeObserver(() => { if (this.chart) this.chart.resize(); });
    this.resizeObserver.observe(container);
  }

  setData(byRun) {
    this.data = byRun;
    this.detail = null;
    return this.draw();
  }

  setOptions(options) {
    Object.assign(this.options, options);
    if (options.xMode !== undefined) this.detail = null;
    return this.draw(true);
  }

  async ensureChart() {
    if (this.chart || this.disposed) return this.chart;
    const echarts = await loadECharts();
    if (this.disposed) return null;
    this.chart = echarts.init(this.container, theme() === "dark" ? "dark" : null, { renderer: "canvas" });
    this.chart.on("datazoom", this.onZoom);
    this.chart.on("finished", () => {
      if (!this.hasData()) return;
      if (this.container.dataset.drawn !== "true") {
        this.container.dataset.drawn = "true";
        mark("chart-drawn");
      }
    });
    return this.chart;
  }

  hasData() {
    return Object.values(this.data).some((s) => s && s.step && s.step.length);
  }

  rebuild() {
    if (!this.chart) return;
    this.chart.dispose();
    this.chart = null;
    this.container.dataset.drawn = "false";
    this.draw(true);
  }

  /** [[x, y], ...] for one run's series (merging zoom detail in), in the current x mode. */
  points(runId) {
    let s = this.data[runId];
    if (!s || !s.step) return { raw: [], smooth: [] };
    let steps = s.step;
    let values = s.value;
    let stamps = s.timestamp;
    const detail = this.detail && this.detail.data[runId];
    if (detail && detail.step.length) {
      const [lo, hi] = this.detail.range;
      const before = steps.findIndex((x) => x >= lo);
      let after = steps.findIndex((x) => x > hi);
      if (after < 0) after = steps.length;
      const cut = before < 0 ? steps.length : before;
      steps = steps.slice(0, cut).concat(detail.step, steps.slice(after));
      values = values.slice(0, cut).concat(detail.value, values.slice(after));
      stamps = stamps.slice(0, cut).concat(detail.timestamp, stamps.slice(after));
    }
    const t0 = stamps.length ? stamps[0] : 0;
    const xs = this.options.xMode === "wall" ? stamps.map((t) => t * 1000)
      : this.options.xMode === "relative" ? stamps.map((t) => t - t0) : steps;
    const ys = values.map((v) => (this.options.logY && !(v > 0) ? null : v));
    const smooth = ema(ys, this.options.smoothing);
    const raw = new Array(xs.length);
    const sm = new Array(xs.length);
    for (let i = 0; i < xs.length; i++) { raw[i] = [xs[i], ys[i]]; sm[i] = [xs[i], smooth[i]]; }
    return { raw, smooth: sm };
  }

  async draw(keepZoom) {
    const chart = await this.ensureChart();
    if (!chart) return;
    const dark = theme() === "dark";
    const smoothing = this.options.smoothing > 0;
    const series = [];
    this.runs.forEach((run, i) => {
      const color = run.color || PALETTE[i % PALETTE.length];
      const { raw, smooth } = this.points(run.id);
      series.push({
        name: run.name, type: "line", data: smoothing ? smooth : raw, showSymbol: raw.length < 60, symbolSize: 4,
        lineStyle: { width: 1.6, color }, itemStyle: { color }, emphasis: { focus: "series" }, connectNulls: false,
        sampling: undefined, large: false, animation: false, z: 3,
      });
      if (smoothing) {
        series.push({
          name: run.name, type: "line", data: raw, showSymbol: false, silent: true,
          lineStyle: { width: 1, color, opacity: 0.25 }, itemStyle: { color }, animation: false, z: 2, tooltip: { show: false },
        });
      }
    });
    const xMode = this.options.xMode;
    const option = {
      backgroundColor: "transparent",
      animation: false,
      aria: { enabled: true, label: { description: `Chart of metric ${this.key} for ${this.runs.map((r) => r.name).join(", ")}` } },
      grid: { left: 56, right: 36, top: this.runs.length > 1 ? 34 : 14, bottom: 58, containLabel: false },
      legend: this.runs.length > 1 ? { type: "scroll", top: 0, data: this.runs.map((r) => r.name), textStyle: { fontSize: 11 } } : { show: false },
      tooltip: {
        trigger: "axis", confine: true, axisPointer: { type: "line" },
        valueFormatter: (v) => (v === null || v === undefined ? "–" : fmtNum(v)),
      },
      toolbox: {
        right: 4, top: this.runs.length > 1 ? 18 : -4, itemSize: 13,
        feature: { dataZoom: { yAxisIndex: "none", title: { zoom: "Box zoom", back: "Undo zoom" } }, restore: { title: "Reset" }, saveAsImage: { title: "Save PNG", name: `metric-${this.key}` } },
      },
      xAxis: {
        type: xMode === "wall" ? "time" : "value", scale: true,
        name: xMode === "step" ? "step" : xMode === "relative" ? "time" : "", nameLocation: "end", nameGap: 4,
        axisLabel: { hideOverlap: true, formatter: xMode === "relative" ? (v) => fmtDuration(v) : xMode === "step" ? compact : undefined },
        splitLine: { show: false },
      },
      yAxis: {
        type: this.options.logY ? "log" : "value", scale: true,
        axisLabel: { formatter: (v) => fmtNum(v) },
        splitLine: { lineStyle: { color: dark ? "#2a3038" : "#eceff3" } },
      },
      dataZoom: [
        { type: "inside", xAxisIndex: 0, filterMode: "filter", zoomOnMouseWheel: "ctrl", moveOnMouseWheel: false, moveOnMouseMove: true },
        { type: "slider", xAxisIndex: 0, filterMode: "filter", height: 18, bottom: 8, showDataShadow: false, labelFormatter: xMode === "relative" ? (v) => fmtDuration(v) : undefined },
      ],
      series,
    };
    chart.setOption(option, { notMerge: !keepZoom, replaceMerge: keepZoom ? ["series"] : undefined, lazyUpdate: false });
  }

  /** After a zoom on a downsampled series, fetch full detail for the visible step range. */
  async zoomed() {
    if (!this.chart || this.options.xMode !== "step" || !this.fetchRange) return;
    const downsampled = Object.values(this.data).some((s) => s && s.method !== "raw");
    if (!downsampled) return;
    const option = this.chart.getOption();
    const zoom = option.dataZoom && option.dataZoom[0];
    if (!zoom || (zoom.start <= 0.01 && zoom.end >= 99.99)) {
      if (this.detail) { this.detail = null; this.draw(true); }
      return;
    }
    const axis = this.chart.getModel().getComponent("xAxis", 0).axis;
    const [lo, hi] = axis.scale.getExtent();
    const [from, to] = [Math.max(lo, zoom.startValue ?? lo), Math.min(hi, zoom.endValue ?? hi)];
    const range = [Math.floor(from), Math.ceil(to)];
    try {
      const data = await this.fetchRange(range);
      if (this.disposed) return;
      this.detail = { range, data };
      this.draw(true);
    } catch (_) { /* keep the coarse view */ }
  }

  zoomBy(factor) {
    if (!this.chart) return;
    const zoom = this.chart.getOption().dataZoom[0];
    const mid = (zoom.start + zoom.end) / 2;
    const half = Math.min(50, Math.max(0.05, ((zoom.end - zoom.start) / 2) * factor));
    this.chart.dispatchAction({ type: "dataZoom", start: Math.max(0, mid - half), end: Math.min(100, mid + half) });
  }

  resetZoom() {
    if (this.chart) this.chart.dispatchAction({ type: "dataZoom", start: 0, end: 100 });
  }

  dispose() {
    this.disposed = true;
    window.removeEventListener("gw-theme", this.onTheme);
    this.resizeObserver.disconnect();
    if (this.chart) this.chart.dispose();
    this.chart = null;
  }
}

/** The shared controls above a grid of charts: smoothing, log axis, x mode. */
export function chartControls(state, onChange) {
  const smoothing = h("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: String(state.smoothing), id: "smoothing", "aria-label": "Smoothing" });
  const smoothingLabel = h("output", { for: "smoothing", class: "mono small" }, state.smoothing.toFixed(2));
  smoothing.addEventListener("input", debounce(() => {
    state.smoothing = parseFloat(smoothing.value);
    smoothingLabel.textContent = state.smoothing.toFixed(2);
    onChange({ smoothing: state.smoothing });
  }, 60));
  const log = h("input", { type: "checkbox", id: "log-y", checked: state.logY });
  log.addEventListener("change", () => { state.logY = log.checked; onChange({ logY: state.logY }); });
  const x = h("select", { id: "x-mode", "aria-label": "X axis" },
    [["step", "x: step"], ["relative", "x: relative time"], ["wall", "x: wall time"]].map(([v, l]) => h("option", { value: v, selected: state.xMode === v }, l)));
  x.addEventListener("change", () => { state.xMode = x.value; onChange({ xMode: state.xMode }); });
  return h("div", { class: "toolbar", role: "group", "aria-label": "Chart options" },
    h("label", { class: "check", for: "smoothing" }, "Smoothing"), smoothing, smoothingLabel,
    h("label", { class: "check" }, log, "log y"),
    x,
    h("span", { class: "muted small" }, "Drag the slider or ctrl+wheel to zoom; zooming fetches full detail."));
}

/** A card holding one MetricChart, with keyboard-usable zoom buttons. */
export function chartCard(key, runs, options, extra) {
  const box = h("div", { class: "chart", role: "img", "aria-label": `Metric ${key}`, dataset: { key } });
  const chart = new MetricChart(box, key, runs, options);
  const info = h("span", { class: "muted small", dataset: { role: "info" } });
  const card = h("section", { class: "chart-card", "aria-label": `Metric ${key}` },
    h("header", null, h("h3", null, key), info,
      h("span", null,
        h("button", { type: "button", class: "small ghost", "aria-label": `Zoom in on ${key}`, onclick: () => chart.zoomBy(0.5) }, "+"),
        h("button", { type: "button", class: "small ghost", "aria-label": `Zoom out of ${key}`, onclick: () => chart.zoomBy(2) }, "−"),
        h("button", { type: "button", class: "small ghost", "aria-label": `Reset zoom of ${key}`, onclick: () => chart.resetZoom() }, "⟲"))),
    box, extra || null);
  chart.info = info;
  return { card, chart };
}

export function describeSeries(series) {
  if (!series) return "";
  const n = series.total || 0;
  const shown = series.step ? series.step.length : 0;
  return n > shown ? `${n.toLocaleString("en-US")} points, ${shown.toLocaleString("en-US")} drawn (LTTB)` : `${n.toLocaleString("en-US")} points`;
}
