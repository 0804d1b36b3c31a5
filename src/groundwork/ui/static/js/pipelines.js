// Pipelines: every pipeline run, and each one's DAG with every step's state (ran, cached, failed, running).
import { navigate } from "./app.js";
import { drawGraph, graphControls, legend } from "./graph.js";
import { Poller, api, clear, errorBox, fmtDuration, fmtTime, h, shortId, statusBadge, table, put } from "./util.js";

const STATES = ["ran", "cached", "failed", "running", "crashed"];

function stepCounts(steps) {
  const named = { finished: "ran" };
  return Object.entries(steps || {}).map(([status, n]) => h("span", { class: `badge ${named[status] || status}` }, `${n} ${named[status] || status}`));
}

export async function renderList(main, ctx) {
  const offset = Math.max(0, parseInt(ctx.query.get("offset") || "0", 10) || 0);
  const body = await api("/pipelines", { limit: 50, offset });
  put(main, h("div", { class: "page-head" }, h("h1", null, "Pipelines"), h("span", { class: "meta" }, `${body.total} pipeline run${body.total === 1 ? "" : "s"}`)));
  if (!body.pipelines.length) {
    main.appendChild(h("p", { class: "empty" }, "No pipeline runs yet. Run one with ", h("code", null, "groundwork pipeline run"), "."));
    return undefined;
  }
  main.appendChild(table(["pipeline", "status", "steps", "started", "duration"], body.pipelines.map((p) => h("tr", null,
    h("td", null, h("a", { href: `/pipelines/${p.id}` }, p.name), " ", h("span", { class: "muted small mono" }, shortId(p.id))),
    h("td", null, statusBadge(p.status)), h("td", null, stepCounts(p.steps)),
    h("td", null, fmtTime(p.created_at)), h("td", { class: "num" }, fmtDuration(p.duration)))), "pipelines"));
  const pager = h("div", { class: "pager" },
    offset > 0 ? h("a", { class: "btn", href: `/pipelines?offset=${Math.max(0, offset - 50)}` }, "‹ Newer") : null,
    offset + 50 < body.total ? h("a", { class: "btn", href: `/pipelines?offset=${offset + 50}` }, "Older ›") : null);
  main.appendChild(pager);
  return undefined;
}

export async function renderPipeline(main, ctx) {
  const ref = ctx.params[0];
  const head = h("div");
  const box = h("div");
  put(main, head, box);
  const data = await api(`/pipelines/${encodeURIComponent(ref)}`);
  if (!ctx.isCurrent()) return undefined;
  const draw = (d) => {
    const p = d.pipeline;
    put(clear(head), 
      h("div", { class: "page-head" }, h("h1", null, p.name), statusBadge(p.status),
        h("span", { class: "meta" }, `${fmtTime(p.created_at)} · ${fmtDuration(p.duration)}`),
        h("a", { href: `/runs/${p.id}` }, "pipeline run page"), h("a", { href: `/lineage?ref=${p.id}` }, "lineage")));
  };
  draw(data);
  const cleanup = await dagView(box, data);
  let poller = null;
  if (data.pipeline.status === "running") {
    poller = new Poller(async () => {
      const fresh = await api(`/pipelines/${encodeURIComponent(ref)}`);
      draw(fresh);
      cleanup.update(fresh);
      if (fresh.pipeline.status !== "running") poller.stop();
    }, 2500).start();
  }
  return () => { if (poller) poller.stop(); cleanup(); };
}

/** The DAG and the steps table of one pipeline run (also the "Steps" tab of its run page). */
async function dagView(box, data) {
  const graphBox = h("div", { class: "graph", id: "pipeline-graph", role: "img", "aria-label": "Pipeline DAG; every step is listed in the table below" });
  const stepsBox = h("div");
  let drawn = null;
  const toGraph = (d) => ({
    root: null,
    nodes: d.dag.nodes.map((n) => ({ ...n, type: "step", label: `${n.label}\n${n.state}${n.duration ? ` · ${fmtDuration(n.duration)}` : ""}` })),
    edges: d.dag.edges,
  });
  const drawSteps = (d) => {
    clear(stepsBox).appendChild(d.dag.nodes.length ? table(["step", "state", "duration", "run", "cached from"], d.dag.nodes.map((n) => h("tr", { dataset: { step: n.id, state: n.state } },
      h("td", { class: "mono" }, n.label), h("td", null, statusBadge(n.state)), h("td", { class: "num" }, fmtDuration(n.duration)),
      h("td", { class: "mono" }, h("a", { href: `/runs/${n.run_id}` }, shortId(n.run_id))),
      h("td", { class: "mono" }, n.cached_from ? h("a", { href: `/runs/${n.cached_from}` }, shortId(n.cached_from)) : "")))) : h("p", { class: "muted" }, "No steps recorded yet."));
  };
  const counts = {};
  data.dag.nodes.forEach((n) => { counts[n.state] = (counts[n.state] || 0) + 1; });
  put(box, 
    h("p", { class: "muted" }, STATES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(" · ") || "no steps"),
    legend([["ran", "--ok"], ["cached", "--cache"], ["failed", "--bad"], ["running", "--run"]]),
    graphControls(() => drawn), graphBox, h("h2", null, "Steps"), stepsBox);
  drawSteps(data);
  const open = (n) => navigate(`/runs/${n.run_id}`);
  try {
    drawn = await drawGraph(graphBox, toGraph(data), { direction: "LR", onOpen: open, onSelect: open });
  } catch (err) {
    graphBox.appendChild(errorBox(err));
  }
  const cleanup = () => drawn && drawn.dispose();
  cleanup.update = async (d) => {
    drawSteps(d);
    if (drawn) drawn.dispose();
    clear(graphBox);
    drawn = await drawGraph(graphBox, toGraph(d), { direction: "LR", onOpen: open, onSelect: open });
  };
  return cleanup;
}

export async function renderSteps(box, run) {
  const data = await api(`/pipelines/${run.id}`);
  return dagView(box, data);
}
