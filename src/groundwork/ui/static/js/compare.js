// Compare runs: overlaid metric charts, a params diff, last metric values, parallel coordinates.
import { setQuery } from "./app.js";
import { PALETTE, chartCard, chartControls, fetchSeries, pointsFor } from "./charts.js";
import { echarts as loadECharts } from "./lazy.js";
import { api, clear, errorBox, fmtNum, h, mark, shortId, statusBadge, table, theme, toast, put } from "./util.js";

export async function render(main, ctx) {
  const ids = (ctx.query.get("runs") || "").split(",").map((s) => s.trim()).filter(Boolean);
  const adder = h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); add(); } },
    h("input", { type: "text", id: "add-run", class: "mono", placeholder: "run id, prefix or name", "aria-label": "Add a run to the comparison" }),
    h("button", { type: "submit" }, "Add run"));
  function add() {
    const value = adder.querySelector("input").value.trim();
    if (!value) return;
    api(`/runs/${encodeURIComponent(value)}`).then(({ run }) => {
      if (!ids.includes(run.id)) ids.push(run.id);
      ctx.navigate(`/compare?runs=${ids.join(",")}`);
    }).catch((err) => toast(err.message, "error"));
  }
  main.appendChild(h("div", { class: "page-head" }, h("h1", null, "Compare runs")));
  if (ids.length === 0) {
    put(main, h("p", null, "Select two or more runs in the ", h("a", { href: "/runs" }, "runs table"), " (checkboxes or ", h("kbd", null, "x"), ") and press Compare, or add them here."), adder);
    return undefined;
  }
  const results = await Promise.allSettled(ids.map((id) => api(`/runs/${encodeURIComponent(id)}`)));
  if (!ctx.isCurrent()) return undefined;
  const runs = [];
  results.forEach((r, i) => {
    if (r.status === "fulfilled") runs.push({ ...r.value.run, color: PALETTE[runs.length % PALETTE.length] });
    else main.appendChild(errorBox(r.reason));
    if (r.status === "rejected") console.warn("could not load", ids[i]);
  });
  if (!runs.length) return undefined;
  const remove = (id) => {
    const rest = runs.filter((r) => r.id !== id).map((r) => r.id);
    ctx.navigate(rest.length ? `/compare?runs=${rest.join(",")}` : "/compare");
  };
  put(main, 
    h("div", { class: "chips", id: "compare-runs", "aria-label": "Runs compared" }, runs.map((r) => h("span", { class: "chip" },
      h("span", { class: "swatch", style: { background: r.color } }), h("a", { href: `/runs/${r.id}` }, r.name), statusBadge(r.status),
      h("button", { type: "button", "aria-label": `Remove ${r.name} from the comparison`, onclick: () => remove(r.id) }, "×")))),
    adder);
  setQuery({ runs: runs.map((r) => r.id).join(",") });

  const cleanups = [];
  // -- metric charts ---------------------------------------------------------------------------
  const keys = [...new Set(runs.flatMap((r) => r.metric_keys.map((m) => m.key)))].sort();
  const state = { smoothing: 0, logY: false, xMode: "step" };
  const grid = h("div", { class: "chart-grid", id: "compare-charts" });
  const cards = [];
  put(main, h("h2", null, "Metrics"), keys.length ? chartControls(state, (o) => cards.forEach((c) => c.chart.setOptions(o))) : h("p", { class: "muted" }, "No metrics."), grid);
  const chartRuns = runs.map((r) => ({ id: r.id, name: r.name, color: r.color }));
  for (const key of keys) {
    const made = chartCard(key, chartRuns, state);
    made.chart.fetchRange = async (range) => {
      const data = await fetchSeries(runs.map((r) => r.id), [key], pointsFor(made.card.clientWidth), range);
      return Object.fromEntries(runs.map((r) => [r.id, data[`${r.id}\u0000${key}`]]));
    };
    cards.push(made);
    grid.appendChild(made.card);
  }
  cleanups.push(() => cards.forEach((c) => c.chart.dispose()));
  if (keys.length) {
    const width = grid.firstChild ? grid.firstChild.clientWidth : 600;
    const perRequest = Math.max(1, Math.floor(400 / runs.length));
    (async () => {
      for (let i = 0; i < keys.length; i += perRequest) {
        const batch = keys.slice(i, i + perRequest);
        const data = await fetchSeries(runs.map((r) => r.id), batch, pointsFor(width));
        for (const key of batch) {
          const made = cards[keys.indexOf(key)];
          made.chart.setData(Object.fromEntries(runs.map((r) => [r.id, data[`${r.id}\u0000${key}`]])));
        }
      }
      mark("compare-charts");
    })().catch((err) => grid.before(errorBox(err)));
  }

  // -- params diff -------------------------------------------------------------------------------
  const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  const onlyDiff = h("input", { type: "checkbox", id: "only-diff" });
  const paramsBox = h("div", { id: "params-diff" });
  const drawParams = () => {
    const rows = [];
    for (const key of paramKeys) {
      const values = runs.map((r) => r.params[key]);
      const differs = new Set(values.map((v) => (v === undefined ? "\u0000" : v))).size > 1;
      if (onlyDiff.checked && !differs) continue;
      rows.push(h("tr", { class: differs ? "diff-row" : null, dataset: { key, differs: String(differs) } },
        h("th", { scope: "row", class: "mono" }, key), values.map((v) => h("td", { class: "mono" }, v === undefined ? "–" : v))));
    }
    clear(paramsBox).appendChild(rows.length ? table(["param", ...runs.map((r) => r.name)], rows) : h("p", { class: "muted" }, onlyDiff.checked ? "Every param is the same." : "No params."));
  };
  onlyDiff.addEventListener("change", drawParams);
  put(main, h("h2", null, "Params"), h("label", { class: "check" }, onlyDiff, "only params that differ (highlighted)"), paramsBox);
  drawParams();

  // -- last metric values ------------------------------------------------------------------------
  const last = (r, key) => { const m = r.metric_keys.find((x) => x.key === key); return m ? m.value : undefined; };
  put(main, h("h2", null, "Last metric values"), keys.length ? table(["metric", ...runs.map((r) => r.name)], keys.map((key) => h("tr", null,
    h("th", { scope: "row", class: "mono" }, key), runs.map((r) => { const v = last(r, key); return h("td", { class: "num mono" }, v === undefined ? "–" : fmtNum(v)); })))) : h("p", { class: "muted" }, "No metrics."));

  // -- parallel coordinates ----------------------------------------------------------------------
  const metricSelect = h("select", { id: "parallel-metric", "aria-label": "Metric for the parallel coordinates" }, keys.map((k) => h("option", { value: k }, k)));
  const parallelBox = h("div", { class: "chart tall", id: "parallel", role: "img", "aria-label": "Parallel coordinates of params against a metric" });
  put(main, h("h2", null, "Params against a metric"), h("div", { class: "toolbar" }, h("label", { for: "parallel-metric" }, "Metric"), metricSelect), parallelBox);
  let parallel = null;
  const drawParallel = async () => {
    if (!paramKeys.length || !keys.length) { clear(parallelBox).appendChild(h("p", { class: "muted" }, "Needs params and metrics.")); return; }
    const echarts = await loadECharts();
    if (parallel) parallel.dispose();
    parallel = echarts.init(parallelBox, theme() === "dark" ? "dark" : null);
    const metric = metricSelect.value || keys[0];
    const axes = paramKeys.map((key, dim) => {
      const values = runs.map((r) => r.params[key]).filter((v) => v !== undefined);
      const numeric = values.length && values.every((v) => v !== "" && Number.isFinite(Number(v)));
      const missing = values.length < runs.length ? ["–"] : [];  // a run without the param sits on "–"
      return numeric ? { dim, name: key, type: "value", scale: true } : { dim, name: key, type: "category", data: [...new Set(values.concat(missing))] };
    });
    axes.push({ dim: paramKeys.length, name: metric, type: "value", scale: true, nameTextStyle: { fontWeight: "bold" } });
    const data = runs.map((r) => ({
      name: r.name,
      value: [...paramKeys.map((k, i) => { const v = r.params[k]; return axes[i].type === "value" ? (v === undefined ? null : Number(v)) : (v === undefined ? "–" : v); }), last(r, metric) ?? null],
      lineStyle: { color: r.color },
    }));
    const metricValues = data.map((d) => d.value[paramKeys.length]).filter((v) => v !== null && Number.isFinite(v));
    parallel.setOption({
      backgroundColor: "transparent",
      animation: false,
      aria: { enabled: true },
      parallelAxis: axes,
      parallel: { left: 60, right: 90, top: 40, bottom: 30, parallelAxisDefault: { nameLocation: "end", nameGap: 14, axisLabel: { hideOverlap: true } } },
      visualMap: metricValues.length ? { show: true, dimension: paramKeys.length, min: Math.min(...metricValues), max: Math.max(...metricValues), right: 0, top: 40, calculable: true, precision: 4, text: [metric, ""], inRange: { color: ["#2563eb", "#16a34a", "#f59e0b", "#dc2626"] } } : undefined,
      tooltip: { trigger: "item", formatter: (p) => p.name },
      series: [{ type: "parallel", lineStyle: { width: 2, opacity: 0.8 }, data }],
    });
  };
  metricSelect.addEventListener("change", drawParallel);
  const onTheme = () => drawParallel();
  window.addEventListener("gw-theme", onTheme);
  drawParallel().catch((err) => parallelBox.appendChild(errorBox(err)));
  cleanups.push(() => { window.removeEventListener("gw-theme", onTheme); if (parallel) parallel.dispose(); });
  return () => cleanups.forEach((c) => c());
}

export { shortId };
