// The lineage graph around a run, an artifact or a model version: the same graph `groundwork lineage` prints.
import { setQuery } from "./app.js";
import { drawGraph, graphControls, legend } from "./graph.js";
import { api, clear, errorBox, fmtBytes, h, kvTable, shortId, statusBadge, table, put } from "./util.js";

export function hrefOf(node) {
  if (node.type === "run") return node.kind === "pipeline" ? `/pipelines/${node.ref}` : `/runs/${node.ref}`;
  if (node.type === "artifact") return `/artifacts/${node.ref}`;
  if (node.type === "model") return `/models/${encodeURIComponent(node.ref.split("/")[0])}`;
  if (node.type === "alias") return `/models/${encodeURIComponent(node.ref.split("@")[0])}`;
  return null;
}

const DIRECTIONS = [["both", "both ways"], ["up", "ancestry (as groundwork lineage)"], ["down", "descendants"]];

export async function render(main, ctx) {
  const ref = ctx.params[0] || ctx.query.get("ref") || "";
  const type = ctx.query.get("type") || "";
  const depth = parseInt(ctx.query.get("depth") || "0", 10) || 0;
  const direction = DIRECTIONS.some(([d]) => d === ctx.query.get("direction")) ? ctx.query.get("direction") : "both";
  const input = h("input", { type: "text", id: "lineage-ref", class: "mono", value: ref, placeholder: "run id or name, artifact digest, or model@alias", "aria-label": "Lineage target", style: { minWidth: "360px" } });
  const depthSelect = h("select", { "aria-label": "Hops from the target" }, [0, 1, 2, 3, 4, 6, 8, 12, 20].map((d) => h("option", { value: d, selected: d === depth }, d ? `${d} hops` : "all hops")));
  const directionSelect = h("select", { "aria-label": "Direction" }, DIRECTIONS.map(([d, label]) => h("option", { value: d, selected: d === direction }, label)));
  const go = () => {
    if (!input.value.trim()) return;
    const query = new URLSearchParams({ ref: input.value.trim() });
    if (directionSelect.value !== "both") query.set("direction", directionSelect.value);
    if (depthSelect.value !== "0") query.set("depth", depthSelect.value);
    ctx.navigate(`/lineage?${query}`);
  };
  const form = h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); go(); } },
    input, directionSelect, depthSelect, h("button", { type: "submit", class: "primary" }, "Show"));
  put(main, h("div", { class: "page-head" }, h("h1", null, "Lineage")), form);
  if (!ref) {
    main.appendChild(h("p", { class: "muted" }, "Data → runs → artifacts → model versions, both ways from what you name. Try a model alias such as digits@production."));
    try {
      const { models } = await api("/models");
      if (models.length) {
        main.appendChild(h("ul", null, models.flatMap((m) => Object.keys(m.aliases).length
          ? Object.keys(m.aliases).map((a) => h("li", null, h("a", { href: `/lineage?ref=${encodeURIComponent(`${m.name}@${a}`)}` }, `${m.name}@${a}`)))
          : [h("li", null, h("a", { href: `/lineage?ref=${encodeURIComponent(m.name)}` }, m.name))])));
      }
    } catch (_) { /* no registry yet */ }
    return undefined;
  }
  setQuery({ ref, type, direction: direction === "both" ? "" : direction, depth: depth || "" });
  const { graph } = await api("/lineage", { ref, type, direction, depth: depth || undefined });
  if (!ctx.isCurrent()) return undefined;
  const box = h("div", { class: "graph", id: "lineage-graph", role: "img", "aria-label": `Lineage graph of ${ref}: ${graph.nodes.length} nodes; the same nodes are listed below` });
  const details = h("aside", { class: "card", id: "lineage-details", "aria-live": "polite" }, h("p", { class: "muted" }, "Click a node for its details."));
  let drawn = null;
  const nodes = Object.fromEntries(graph.nodes.map((n) => [n.id, n]));
  const showDetails = (node) => {
    const rows = [["type", node.type], ["name", node.label]];
    if (node.status) rows.push(["status", statusBadge(node.status)]);
    if (node.kind) rows.push(["kind", node.kind]);
    if (node.size) rows.push(["size", fmtBytes(node.size)]);
    if (node.flavor) rows.push(["flavor", node.flavor]);
    if (node.aliases && node.aliases.length) rows.push(["aliases", node.aliases.join(", ")]);
    if (node.ref) rows.push(["ref", node.type === "artifact" ? shortId(node.ref) : node.ref]);
    const attrs = node.attrs || {};
    if (attrs.params && Object.keys(attrs.params).length) rows.push(["params", Object.entries(attrs.params).map(([k, v]) => `${k}=${v}`).join(", ")]);
    if (attrs.metrics && Object.keys(attrs.metrics).length) rows.push(["metrics", Object.entries(attrs.metrics).map(([k, v]) => `${k}=${v === null ? "nan" : Number(v).toPrecision(4)}`).join(", ")]);
    if (attrs.signature) rows.push(["signature", attrs.signature]);
    const ins = graph.edges.filter((e) => e.target === node.id).map((e) => nodes[e.source]);
    const outs = graph.edges.filter((e) => e.source === node.id).map((e) => nodes[e.target]);
    put(clear(details), h("h2", null, node.label), kvTable(rows),
      h("p", null, h("a", { href: hrefOf(node), class: "btn primary" }, "Open"), " ",
        node.ref ? h("a", { href: `/lineage?ref=${encodeURIComponent(node.type === "model" ? `model:${node.ref.split("/")[0]}` : node.ref)}` }, "centre the graph here") : null),
      ins.length ? [h("h3", null, "From"), h("ul", null, ins.map((n) => h("li", null, h("a", { href: "#", onclick: (e) => { e.preventDefault(); drawn && drawn.select(n.id); showDetails(n); } }, n.label))))] : null,
      outs.length ? [h("h3", null, "To"), h("ul", null, outs.map((n) => h("li", null, h("a", { href: "#", onclick: (e) => { e.preventDefault(); drawn && drawn.select(n.id); showDetails(n); } }, n.label))))] : null);
  };
  put(main, 
    h("p", { class: "muted" }, `${graph.nodes.length} nodes, ${graph.edges.length} edges${graph.truncated ? " (truncated: ask for fewer hops)" : ""}.`),
    legend([["run", "--ok"], ["failed run", "--bad"], ["cached run", "--cache"], ["artifact", "--border", "ellipse"], ["model version / alias", "--accent"]]),
    graphControls(() => drawn),
    h("div", { class: "graph-layout" }, box, details),
    h("h2", null, "Nodes"),
    table(["type", "name", "status", "links"], graph.nodes.map((n) => h("tr", { dataset: { node: n.id } },
      h("td", null, n.type), h("td", null, h("a", { href: hrefOf(n) }, n.label)), h("td", null, n.status ? statusBadge(n.status) : ""),
      h("td", { class: "small muted" }, `${graph.edges.filter((e) => e.target === n.id).length} in, ${graph.edges.filter((e) => e.source === n.id).length} out`))), "lineage-nodes"));
  try {
    drawn = await drawGraph(box, graph, {
      onSelect: (n) => showDetails(nodes[n.id]),
      onOpen: (n) => { const href = hrefOf(nodes[n.id]); if (href) ctx.navigate(href); },
    });
    if (nodes[graph.root]) showDetails(nodes[graph.root]);
  } catch (err) {
    box.appendChild(errorBox(err));
  }
  return () => drawn && drawn.dispose();
}
