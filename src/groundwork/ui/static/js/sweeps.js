// Sweeps: every sweep, and one sweep's trials table, best-so-far chart, parallel coordinates and parameter importance.
import { echarts } from "./lazy.js";
import { Poller, api, clear, fmtDuration, fmtNum, fmtTime, h, put, shortId, statusBadge, table, theme } from "./util.js";

const STATES = ["finished", "pruned", "failed", "crashed", "running"];

function counts(rows) {
  const out = {};
  rows.forEach((r) => { out[r.status] = (out[r.status] || 0) + 1; });
  return out;
}

export async function renderList(main, ctx) {
  const offset = Math.max(0, parseInt(ctx.query.get("offset") || "0", 10) || 0);
  const body = await api("/sweeps", { limit: 50, offset });
  put(main, h("div", { class: "page-head" }, h("h1", null, "Sweeps")));
  if (!body.sweeps.length) {
    main.appendChild(h("p", { class: "empty" }, "No sweeps yet. Start one with ", h("code", null, "groundwork sweep"), " or ", h("code", null, "gw.sweep"), "."));
    return undefined;
  }
  main.appendChild(table(["sweep", "status", "objective", "trials", "started", "duration"], body.sweeps.map((s) => h("tr", null,
    h("td", null, h("a", { href: `/sweeps/${s.id}` }, s.name), " ", h("span", { class: "muted small mono" }, shortId(s.id))),
    h("td", null, statusBadge(s.status)), h("td", null, `${s.direction === "maximize" ? "max" : "min"} ${s.metric}`),
    h("td", { class: "num" }, s.trials || "–"), h("td", null, fmtTime(s.created_at)), h("td", { class: "num" }, fmtDuration(s.duration)))), "sweeps"));
  return undefined;
}

export async function renderSweep(main, ctx) {
  const ref = ctx.params[0];
  const head = h("div");
  const charts = h("div", { class: "sweep-charts" });
  const importanceBox = h("div");
  const trialsBox = h("div");
  put(main, head, charts, h("h2", null, "Parameter importance"), importanceBox, h("h2", null, "Trials"), trialsBox);
  let data = await api(`/sweeps/${encodeURIComponent(ref)}`);
  if (!ctx.isCurrent()) return undefined;
  const drawn = [];
  const drawAll = async () => {
    const s = data.sweep;
    drawHead(head, s);
    drawTrials(trialsBox, s);
    drawImportance(importanceBox, s);
    drawn.splice(0).forEach((c) => c.dispose());
    clear(charts);
    const best = h("div", { class: "chart", id: "sweep-best", role: "img", "aria-label": `Best ${s.metric} so far after each finished trial`, style: { height: "280px" } });
    const parallel = h("div", { class: "chart", id: "sweep-parallel", role: "img", "aria-label": "Parallel coordinates: each line is a trial through its parameters to its value", style: { height: "320px" } });
    put(charts, h("h2", null, `Best ${s.metric} so far`), best, h("h2", null, "Parallel coordinates"), parallel);
    const lib = await echarts();
    drawn.push(bestChart(lib, best, s), parallelChart(lib, parallel, s));
  };
  await drawAll();
  let poller = null;
  if (data.sweep.status === "running") {
    poller = new Poller(async () => {
      data = await api(`/sweeps/${encodeURIComponent(ref)}`);
      await drawAll();
      if (data.sweep.status !== "running") poller.stop();
    }, 3000).start();
  }
  const redraw = () => drawAll();
  window.addEventListener("gw-theme", redraw);
  return () => { if (poller) poller.stop(); window.removeEventListener("gw-theme", redraw); drawn.forEach((c) => c.dispose()); };
}

function drawHead(head, s) {
  const c = counts(s.rows);
  const best = s.best;
  put(clear(head),
    h("div", { class: "page-head" }, h("h1", null, s.name), statusBadge(s.status),
      h("span", { class: "meta" }, `${s.direction === "maximize" ? "maximize" : "minimize"} ${s.metric} · sampler ${s.sampler} · pruner ${s.pruner || "none"} · parallel ${s.parallel} (${s.executor})`),
      h("a", { href: `/runs/${s.id}` }, "sweep run page")),
    h("p", { class: "muted", id: "sweep-counts" }, `${s.rows.length} of ${s.trials} trials: ` + (STATES.filter((k) => c[k]).map((k) => `${c[k]} ${k}`).join(" · ") || "none yet")),
    best ? h("p", { id: "sweep-best-trial" }, h("strong", null, "Best: "), `trial ${best.number} `,
      h("a", { href: `/runs/${best.id}`, class: "mono" }, shortId(best.id)), ` ${s.metric} = ${fmtNum(best.value)} · `,
      Object.entries(best.params).map(([k, v]) => `${k}=${v}`).join(", ")) : null,
    s.error ? h("p", { class: "error-box" }, s.error) : null);
}

function drawTrials(box, s) {
  const names = Object.keys(s.space);
  const rows = s.rows.map((r) => h("tr", { dataset: { trial: String(r.number), status: r.status } },
    h("td", { class: "num" }, String(r.number)),
    h("td", { class: "mono" }, h("a", { href: `/runs/${r.id}` }, shortId(r.id))),
    h("td", null, statusBadge(r.status)),
    h("td", { class: "num" }, r.value === null ? "–" : fmtNum(r.value)),
    names.map((n) => h("td", { class: "mono" }, r.params[n] === undefined ? "–" : r.params[n])),
    h("td", { class: "num" }, fmtDuration(r.duration)),
    h("td", { class: "wrap small" }, r.reason || "")));
  put(clear(box), s.rows.length
    ? table(["#", "run", "status", { label: s.metric, num: true }, ...names, { label: "duration", num: true }, "reason"], rows, "sweep-trials")
    : h("p", { class: "muted" }, "No trials yet."));
}

function drawImportance(box, s) {
  const entries = Object.entries(s.importance || {}).sort((a, b) => b[1] - a[1]);
  if (!entries.length) {
    put(clear(box), h("p", { class: "muted", id: "sweep-importance-note" }, s.importance_note || "Not available."));
    return;
  }
  put(clear(box), table(["parameter", { label: "importance", num: true }, ""], entries.map(([k, v]) => h("tr", null,
    h("th", { scope: "row", class: "mono" }, k), h("td", { class: "num" }, v.toFixed(3)),
    h("td", null, h("span", { class: "bar", style: { display: "inline-block", height: "0.7em", width: `${Math.round(v * 200)}px`, background: "var(--accent, #2563eb)" } })))), "sweep-importance"));
}

function bestChart(lib, el, s) {
  const chart = lib.init(el, theme() === "dark" ? "dark" : null, { renderer: "canvas" });
  const points = s.best_so_far;
  chart.setOption({
    backgroundColor: "transparent",
    animation: false,
    tooltip: { trigger: "axis" },
    legend: { data: ["trial", "best so far"] },
    xAxis: { type: "value", name: "finished trials", minInterval: 1 },
    yAxis: { type: "value", name: s.metric, scale: true },
    series: [
      { name: "trial", type: "scatter", symbolSize: 6, data: points.map((p) => [p.count, p.value]) },
      { name: "best so far", type: "line", step: "end", showSymbol: false, data: points.map((p) => [p.count, p.best]) },
    ],
  });
  return chart;
}

function parallelChart(lib, el, s) {
  const chart = lib.init(el, theme() === "dark" ? "dark" : null, { renderer: "canvas" });
  const names = Object.keys(s.space);
  const rows = s.rows.filter((r) => r.status === "finished" && r.value !== null);
  const axes = names.map((name, dim) => {
    const numeric = rows.every((r) => r.params[name] !== undefined && r.params[name] !== "" && !Number.isNaN(Number(r.params[name])));
    const logScale = /^loguniform/.test(s.space[name]);
    return numeric
      ? { dim, name, type: logScale ? "log" : "value", scale: true }
      : { dim, name, type: "category", data: [...new Set(rows.map((r) => String(r.params[name])))] };
  });
  axes.push({ dim: names.length, name: s.metric, type: "value", scale: true });
  const data = rows.map((r) => [...names.map((n, i) => (axes[i].type === "category" ? String(r.params[n]) : Number(r.params[n]))), r.value]);
  const values = rows.map((r) => r.value);
  chart.setOption({
    backgroundColor: "transparent",
    animation: false,
    parallelAxis: axes,
    visualMap: values.length ? {
      show: false, dimension: names.length, min: Math.min(...values), max: Math.max(...values),
      inRange: { color: s.direction === "maximize" ? ["#94a3b8", "#2563eb"] : ["#2563eb", "#94a3b8"] },
    } : undefined,
    series: [{ type: "parallel", lineStyle: { width: 1.5, opacity: 0.7 }, data }],
  });
  return chart;
}
