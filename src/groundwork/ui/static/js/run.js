// One run: overview (params, tags, environment, lineage neighbours), charts, logs, artifacts, code.
import { setQuery } from "./app.js";
import { artifactPanel } from "./artifact.js";
import { cardWidth, chartCard, chartControls, describeSeries, fetchSeries, pointsFor } from "./charts.js";
import {
  Poller, api, clear, copyButton, errorBox, fmtBytes, fmtDuration, fmtNum, fmtTime, h, kvTable, mark, put, shortId, statusBadge, table, tabs,
} from "./util.js";

export async function render(main, ctx) {
  const ref = ctx.params[0];
  // On the charts tab, ask for every series while the run itself loads (the series endpoint resolves the ref).
  let early = ctx.query.get("tab") === "charts" ? fetchSeries([ref], [], pointsFor(cardWidth())).catch(() => null) : null;
  let run = (await api(`/runs/${encodeURIComponent(ref)}`)).run;
  if (!ctx.isCurrent()) return undefined;
  const cleanups = [];
  const chartState = { smoothing: 0, logY: false, xMode: "step" };
  const head = h("div");
  const tabBox = h("div");
  const panel = h("div", { id: "tabpanel", role: "tabpanel" });
  put(main, head, tabBox, panel);

  const tabList = () => {
    const items = [{ id: "overview", label: "Overview" }, { id: "charts", label: `Charts (${run.metric_keys.length})` },
      { id: "logs", label: "Logs" }, { id: "artifacts", label: `Artifacts (${run.inputs.length + run.outputs.length})` }, { id: "code", label: "Code" }];
    if (run.children.count) items.splice(1, 0, { id: "steps", label: `Steps (${run.children.count})` });
    if (run.kind === "optimize") items.splice(1, 0, { id: "report", label: "Optimize report" });
    return items;
  };
  let current = ctx.query.get("tab") || "overview";
  let tabCleanup = null;

  function drawHead() {
    put(clear(head), 
      h("div", { class: "page-head" },
        h("h1", null, run.name), statusBadge(run.status),
        run.kind !== "run" ? h("span", { class: "badge neutral" }, run.kind) : null,
        run.status === "running" ? h("span", { class: "live", "aria-live": "polite" }, "live: updating every few seconds") : null),
      h("div", { class: "meta muted" },
        h("span", { class: "mono" }, shortId(run.id)), copyButton(run.id, "run id"), " · ",
        fmtTime(run.created_at), " · ", fmtDuration(run.duration),
        run.user ? ` · ${run.user}${run.host ? "@" + run.host : ""}` : "",
        run.parent ? [" · part of ", h("a", { href: run.parent.kind === "pipeline" ? `/pipelines/${run.parent.id}` : `/runs/${run.parent.id}` }, run.parent.name || shortId(run.parent.id))] : null,
        run.cached_from ? [" · cached from ", h("a", { href: `/runs/${run.cached_from}` }, shortId(run.cached_from))] : null,
        " · ", h("a", { href: `/lineage?ref=${run.id}` }, "lineage graph")),
      run.command ? h("pre", { class: "code", style: { marginTop: "8px" } }, run.command.join(" ")) : null);
  }

  function drawTabs() {
    clear(tabBox).appendChild(tabs(tabList(), current, select));
  }

  function select(id) {
    current = id;
    setQuery({ tab: id === "overview" ? "" : id });
    drawTabs();
    showTab();
  }

  function showTab() {
    if (tabCleanup) { tabCleanup(); tabCleanup = null; }
    clear(panel);
    panel.setAttribute("aria-labelledby", `tab-${current}`);
    const draw = { overview, charts, logs, artifacts, code, steps, report }[current] || overview;
    const result = draw(panel);
    Promise.resolve(result).then((c) => { if (typeof c === "function") tabCleanup = c; }).catch((err) => panel.appendChild(errorBox(err)));
  }

  // -- overview ----------------------------------------------------------------------------------
  function overview(box) {
    const env = run.environment || {};
    const cpu = env.cpu || {};
    const attrs = [
      ["id", run.id], ["kind", run.kind], ["status", run.status], ["created", fmtTime(run.created_at)], ["ended", fmtTime(run.ended_at)],
      ["duration", fmtDuration(run.duration)], ["exit code", run.exit_code ?? "–"], ["user", run.user || "–"], ["host", run.host || "–"],
      ["working directory", run.cwd || "–"],
    ];
    if (run.cache_key) attrs.push(["cache key", run.cache_key]);
    const metricRows = run.metric_keys.map((m) => [m.key, `${fmtNum(m.value)}  (step ${m.step})`]);
    const hardware = [
      ["python", env.python ? `${env.python.implementation || ""} ${env.python.version || ""}` : "–"],
      ["os", env.os ? `${env.os.system || ""} ${env.os.release || ""}` : "–"],
      ["cpu", cpu.model ? `${cpu.model} (${cpu.cores_logical || "?"} logical cores)` : "–"],
      ["cpu features", (cpu.features || []).join(" ") || "–"],
      ["memory", env.memory_bytes ? fmtBytes(env.memory_bytes) : "–"],
      ["gpus", (env.gpus || []).length ? env.gpus.map((g) => (typeof g === "string" ? g : g.name || JSON.stringify(g))).join(", ") : "none"],
    ];
    const packages = Object.entries(env.packages || {});
    const pkgFilter = h("input", { type: "search", placeholder: "filter packages", "aria-label": "Filter packages" });
    const pkgBox = h("div");
    const drawPkgs = () => {
      const needle = pkgFilter.value.toLowerCase();
      clear(pkgBox).appendChild(kvTable(packages.filter(([k]) => k.toLowerCase().includes(needle)).slice(0, 400)));
    };
    pkgFilter.addEventListener("input", drawPkgs);
    drawPkgs();
    put(box, 
      run.error ? h("section", { class: "card", style: { marginBottom: "14px" } }, h("h2", null, "Error"), h("pre", { class: "log" }, run.error)) : null,
      h("div", { class: "cards" },
        h("section", { class: "card" }, h("h2", null, "Params"), kvTable(Object.entries(run.params), "No params.")),
        h("section", { class: "card" }, h("h2", null, "Metrics (last values)"), kvTable(metricRows, "No metrics.")),
        h("section", { class: "card" }, h("h2", null, "Tags"), kvTable(Object.entries(run.tags), "No tags.")),
        h("section", { class: "card" }, h("h2", null, "Run"), kvTable(attrs)),
        h("section", { class: "card" }, h("h2", null, "Environment and hardware"), kvTable(hardware),
          packages.length ? h("details", null, h("summary", null, `${packages.length} installed packages`), pkgFilter, pkgBox) : null),
        run.models.length ? h("section", { class: "card" }, h("h2", null, "Registered models"),
          h("ul", null, run.models.map((m) => h("li", null, h("a", { href: `/models/${encodeURIComponent(m.name)}` }, `${m.name} v${m.version}`), " ",
            m.aliases.map((a) => h("span", { class: "badge alias" }, a)))))) : null,
        neighbours()));
  }

  function neighbours() {
    const box = h("section", { class: "card", id: "lineage-neighbours" }, h("h2", null, "Lineage neighbours"), h("p", { class: "muted" }, "Loading…"));
    api("/lineage", { ref: run.id, type: "run", depth: 2 }).then(({ graph }) => {
      const nodes = Object.fromEntries(graph.nodes.map((n) => [n.id, n]));
      const me = `run:${run.id}`;
      const upstream = [];
      const downstream = [];
      for (const e of graph.edges) {
        if (e.target === me) continue;
        if (e.source === me) continue;
        const a = nodes[e.source];
        const b = nodes[e.target];
        if (a.type === "run" && graph.edges.some((x) => x.source === e.target && x.target === me)) upstream.push([a, b]);
        if (b.type === "run" && graph.edges.some((x) => x.source === me && x.target === e.source)) downstream.push([b, a]);
        if (b.type === "model") downstream.push([b, a]);
      }
      const link = (n) => h("a", { href: n.type === "run" ? `/runs/${n.ref}` : n.type === "model" ? `/models/${encodeURIComponent(n.ref.split("/")[0])}` : `/artifacts/${n.ref}` }, n.label);
      put(clear(box), h("h2", null, "Lineage neighbours"),
        h("h3", null, "Made what this run read"),
        upstream.length ? h("ul", null, upstream.map(([r, art]) => h("li", null, link(r), " → ", link(art)))) : h("p", { class: "muted" }, "Nothing recorded upstream."),
        h("h3", null, "Used what this run wrote"),
        downstream.length ? h("ul", null, downstream.map(([r, art]) => h("li", null, link(art), " → ", link(r)))) : h("p", { class: "muted" }, "Nothing recorded downstream."),
        h("p", null, h("a", { href: `/lineage?ref=${run.id}` }, "Open the lineage graph →")));
    }).catch((err) => put(clear(box), h("h2", null, "Lineage neighbours"), errorBox(err)));
    return box;
  }

  // -- charts ------------------------------------------------------------------------------------
  function charts(box) {
    if (!run.metric_keys.length) { box.appendChild(h("p", { class: "empty" }, "This run logged no metrics.")); return undefined; }
    const grid = h("div", { class: "chart-grid", id: "charts" });
    const filter = h("input", { type: "search", placeholder: "filter metrics", "aria-label": "Filter metrics" });
    const cards = new Map();
    const runs = [{ id: run.id, name: run.name }];
    put(box, chartControls(chartState, (o) => cards.forEach(({ chart }) => chart.setOptions(o))),
      run.metric_keys.length > 6 ? h("div", { class: "toolbar" }, filter) : null, grid);
    filter.addEventListener("input", () => cards.forEach(({ card }, key) => card.classList.toggle("hidden", !key.toLowerCase().includes(filter.value.toLowerCase()))));
    const addCard = (key) => {
      const made = chartCard(key, runs, chartState);
      made.chart.fetchRange = async (range) => {
        const data = await fetchSeries([run.id], [key], pointsFor(made.card.clientWidth), range);
        return { [run.id]: data[`${run.id}\u0000${key}`] };
      };
      cards.set(key, made);
      grid.appendChild(made.card);
      return made;
    };
    const load = async () => {
      const keys = run.metric_keys.map((m) => m.key);
      keys.forEach((k) => { if (!cards.has(k)) addCard(k); });
      const width = grid.firstChild ? grid.firstChild.clientWidth : cardWidth();
      let data = early ? await early : null;
      early = null;
      if (!data || keys.some((k) => !data[`${run.id}\u0000${k}`])) data = await fetchSeries([run.id], keys, pointsFor(width));
      for (const key of keys) {
        const made = cards.get(key);
        const series = data[`${run.id}\u0000${key}`];
        made.chart.info.textContent = describeSeries(series);
        made.chart.setData({ [run.id]: series });
      }
      mark("charts-loaded");
    };
    load().catch((err) => box.appendChild(errorBox(err)));
    chartsRefresh = load;
    return () => { chartsRefresh = null; cards.forEach(({ chart }) => chart.dispose()); };
  }
  let chartsRefresh = null;

  // -- logs --------------------------------------------------------------------------------------
  function logs(box) {
    const pre = h("pre", { class: "log", id: "logs", tabindex: "0", "aria-label": "Captured output" });
    const stream = h("select", { "aria-label": "Stream" }, [["", "stdout + stderr"], ["stdout", "stdout"], ["stderr", "stderr"]].map(([v, l]) => h("option", { value: v }, l)));
    const search = h("input", { type: "search", placeholder: "search the whole log (Enter)", "aria-label": "Search the log" });
    const follow = h("input", { type: "checkbox", checked: run.status === "running" });
    const status = h("span", { class: "muted small", "aria-live": "polite" });
    let lastId = 0;
    let needle = "";
    const line = (chunk) => {
      const cls = chunk.stream === "stderr" ? "stderr" : null;
      if (!needle) return h("span", { class: cls }, chunk.text);
      const parts = chunk.text.split(new RegExp(`(${needle.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")})`, "gi"));
      return h("span", { class: cls }, parts.map((p, i) => (i % 2 ? h("mark", null, p) : p)));
    };
    const load = async () => {
      const body = await api(`/runs/${run.id}/logs`, { stream: stream.value, q: needle, tail: 2000 });
      put(clear(pre), ...body.lines.map(line));
      if (!body.lines.length) pre.appendChild(h("span", { class: "muted" }, needle ? "No line matches." : "Nothing captured."));
      lastId = body.last_id;
      status.textContent = `${body.lines.length} chunk(s)${body.truncated ? " (the last 2,000)" : ""}`;
      pre.scrollTop = pre.scrollHeight;
    };
    const more = async () => {
      if (needle || !follow.checked) return;
      const body = await api(`/runs/${run.id}/logs`, { stream: stream.value, after: lastId, tail: 2000 });
      if (body.lines.length) {
        const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
        put(pre, ...body.lines.map(line));
        lastId = body.last_id;
        if (atBottom) pre.scrollTop = pre.scrollHeight;
      }
    };
    stream.addEventListener("change", load);
    search.addEventListener("keydown", (e) => { if (e.key === "Enter") { needle = search.value.trim(); load(); } });
    search.addEventListener("search", () => { needle = search.value.trim(); load(); });
    put(box, h("div", { class: "toolbar" }, stream, search, h("label", { class: "check" }, follow, "follow"), status), pre);
    load().catch((err) => box.appendChild(errorBox(err)));
    logsRefresh = more;
    return () => { logsRefresh = null; };
  }
  let logsRefresh = null;

  // -- artifacts ---------------------------------------------------------------------------------
  function artifacts(box) {
    const preview = h("div", { class: "preview", id: "artifact-preview" });
    const rows = (links, direction) => links.map((a) => h("tr", null,
      h("td", null, direction), h("td", { class: "mono wrap" }, a.name), h("td", null, h("span", { class: "badge neutral" }, a.kind)),
      h("td", { class: "num" }, fmtBytes(a.size)), h("td", { class: "num" }, a.is_dir ? a.file_count : ""),
      h("td", { class: "mono" }, h("a", { href: `/artifacts/${a.digest}` }, a.digest.slice(0, 12))),
      h("td", null,
        h("button", { type: "button", class: "small", onclick: () => { clear(preview).appendChild(artifactPanel(a.digest, a.name)); preview.scrollIntoView({ block: "nearest" }); } }, a.is_dir ? "Files" : "Preview"), " ",
        a.is_dir ? null : h("a", { class: "btn small", href: `/api/v1/artifacts/${a.digest}/raw?download=true`, download: a.name.split("/").pop() }, "Download"))));
    const all = [...rows(run.inputs, "input"), ...rows(run.outputs, "output")];
    put(box, all.length ? table(["", "name", "kind", { label: "size", num: true }, { label: "files", num: true }, "digest", ""], all) : h("p", { class: "empty" }, "No inputs or outputs recorded."), preview);
  }

  // -- code --------------------------------------------------------------------------------------
  function code(box) {
    const git = run.git || {};
    box.appendChild(h("div", { class: "cards" }, h("section", { class: "card" }, h("h2", null, "Code version"), kvTable([
      ["commit", git.commit || "–"], ["branch", git.branch || "–"], ["uncommitted changes", git.dirty ? "yes (below)" : git.dirty === false ? "none" : "–"],
      ["command", run.command ? run.command.join(" ") : "–"], ["working directory", run.cwd || "–"],
    ]))));
    if (!git.diff_digest) return;
    const diffBox = h("div", null, h("p", { class: "muted" }, "Loading the diff…"));
    put(box, h("h2", null, "Uncommitted diff"), diffBox);
    api(`/runs/${run.id}/diff`).then((body) => {
      const pre = h("pre", { class: "diff", id: "diff", tabindex: "0", "aria-label": "Uncommitted diff" });
      for (const text of body.diff.split("\n")) {
        const cls = text.startsWith("+++") || text.startsWith("---") || text.startsWith("diff ") ? "file"
          : text.startsWith("@@") ? "hunk" : text.startsWith("+") ? "add" : text.startsWith("-") ? "del" : null;
        pre.appendChild(h("span", { class: cls }, text || " "));
      }
      put(clear(diffBox), pre, body.truncated ? h("p", { class: "muted" }, "Truncated at 4 MB.") : null);
    }).catch((err) => clear(diffBox).appendChild(errorBox(err)));
  }

  // -- pipeline steps / optimize report ----------------------------------------------------------
  async function steps(box) {
    const { renderSteps } = await import("./pipelines.js");
    return renderSteps(box, run);
  }

  async function report(box) {
    const { renderReport } = await import("./optimize.js");
    return renderReport(box, run);
  }

  // -- live --------------------------------------------------------------------------------------
  let poller = null;
  const refresh = async () => {
    const fresh = (await api(`/runs/${run.id}`)).run;
    const newKeys = fresh.metric_keys.length !== run.metric_keys.length;
    run = fresh;
    drawHead();
    if (newKeys) drawTabs();
    if (chartsRefresh) await chartsRefresh();
    if (logsRefresh) await logsRefresh();
    if (run.status !== "running" && poller) { poller.stop(); poller = null; drawHead(); }
  };
  if (run.status === "running") poller = new Poller(refresh, 2500).start();
  cleanups.push(() => poller && poller.stop());

  drawHead();
  drawTabs();
  showTab();
  return () => {
    if (tabCleanup) tabCleanup();
    cleanups.forEach((c) => c());
  };
}
