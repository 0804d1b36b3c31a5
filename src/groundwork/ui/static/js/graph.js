// Interactive DAGs on Cytoscape.js with the dagre layered layout: lineage graphs and pipeline DAGs.
import { cytoscape as loadCytoscape } from "./lazy.js";
import { h, mark } from "./util.js";

let measure = null;
/** [width, height] in px of a (multi-line) label at the graph's 11px font. */
function textSize(label) {
  measure = measure || document.createElement("canvas").getContext("2d");
  measure.font = "11px system-ui, sans-serif";
  const lines = String(label).split("\n");
  const width = Math.min(150, Math.max(...lines.map((l) => measure.measureText(l).width)));
  const wrapped = lines.reduce((n, l) => n + Math.max(1, Math.ceil(measure.measureText(l).width / 150)), 0);
  return [Math.max(36, width), wrapped * 14];
}

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

const STATUS_VAR = { finished: "--ok", ran: "--ok", failed: "--bad", running: "--run", crashed: "--crash", cached: "--cache", skipped: "--border", pending: "--border" };

/**
 * Draw ``graph`` ({nodes: [{id, label, type, status|state, ...}], edges: [{source, target, label}], root})
 * into ``container``. ``onOpen(node)`` runs on a double click / tap-hold, ``onSelect(node)`` on a click.
 */
export async function drawGraph(container, graph, options) {
  const cytoscape = await loadCytoscape();
  const opts = { direction: "LR", onOpen: null, onSelect: null, ...(options || {}) };
  const colour = (n) => css(STATUS_VAR[n.state || n.status] || "--fg-muted") || "#888";
  const elements = [
    ...graph.nodes.map((n) => {
      const label = n.label + (n.aliases && n.aliases.length ? `\n@${n.aliases.join(" @")}` : "");
      const [w, hgt] = textSize(label);
      return {
        data: { ...n, attrs: undefined, label, colour: colour(n), w: w + (n.type === "model" ? 36 : n.type === "alias" ? 30 : 22), h: hgt + (n.type === "model" ? 22 : 16) },
        classes: [n.type || "step", n.id === graph.root ? "root" : ""].join(" "),
      };
    }),
    // Edge labels repeat the artifact's name; only "registered as" says something new.
    ...graph.edges.map((e, i) => ({ data: { id: `e${i}`, source: e.source, target: e.target, label: e.label === "registered as" ? e.label : "", name: e.label || "" } })),
  ];
  const fg = css("--fg");
  const bg = css("--bg");
  const border = css("--border");
  const accent = css("--accent");
  const cy = cytoscape({
    container,
    elements,
    minZoom: 0.1,
    maxZoom: 3,
    style: [
      { selector: "node", style: {
        label: "data(label)", "text-wrap": "wrap", "text-max-width": "150px", "font-size": 11, color: fg,
        "text-valign": "center", "text-halign": "center", "background-color": bg, "border-width": 2, "border-color": "data(colour)",
        width: "data(w)", height: "data(h)", shape: "round-rectangle",
      } },
      { selector: "node.artifact", style: { shape: "barrel", "border-color": border, "border-style": "solid", "background-color": css("--bg-soft") } },
      { selector: "node.model", style: { shape: "hexagon", "border-color": accent, "border-width": 3 } },
      { selector: "node.alias", style: { shape: "tag", "border-color": accent, "border-width": 2, color: accent, "font-weight": "bold" } },
      { selector: "node.step", style: { "border-width": 3, "background-color": bg } },
      { selector: "node.root", style: { "border-width": 4, "underlay-color": accent, "underlay-opacity": 0.18, "underlay-padding": 6 } },
      { selector: "node:selected", style: { "overlay-color": accent, "overlay-opacity": 0.15 } },
      { selector: "edge", style: {
        width: 1.6, "line-color": border, "target-arrow-color": border, "target-arrow-shape": "triangle", "curve-style": "bezier",
        label: "data(label)", "font-size": 9, color: css("--fg-muted"), "text-rotation": "autorotate", "text-background-color": bg,
        "text-background-opacity": 0.8, "text-background-padding": "2px",
      } },
    ],
    layout: { name: "dagre", rankDir: opts.direction, nodeSep: 24, rankSep: 70, edgeSep: 10, fit: true, padding: 24, animate: false },
  });
  cy.on("tap", "node", (e) => { if (opts.onSelect) opts.onSelect(e.target.data()); });
  cy.on("dbltap taphold", "node", (e) => { if (opts.onOpen) opts.onOpen(e.target.data()); });
  if (cy.zoom() > 1.3) { cy.zoom(1.3); cy.center(); }
  Object.defineProperty(container, "cy", { value: cy, configurable: true });  // for tests and the console
  const done = () => { container.dataset.drawn = "true"; mark("graph-drawn"); };
  if (cy.nodes().length) requestAnimationFrame(() => requestAnimationFrame(done));
  const onResize = () => { cy.resize(); };
  const observer = new ResizeObserver(onResize);
  observer.observe(container);
  return {
    cy,
    fit: () => cy.fit(undefined, 24),
    zoom: (factor) => cy.zoom({ level: cy.zoom() * factor, renderedPosition: { x: container.clientWidth / 2, y: container.clientHeight / 2 } }),
    select: (id) => { cy.nodes().unselect(); const n = cy.getElementById(id); if (n) { n.select(); cy.animate({ center: { eles: n }, duration: 0 }); } },
    dispose: () => { observer.disconnect(); cy.destroy(); },
  };
}

/** Keyboard-usable controls for a drawn graph. */
export function graphControls(getGraph) {
  return h("div", { class: "toolbar", role: "group", "aria-label": "Graph view" },
    h("button", { type: "button", class: "small", onclick: () => getGraph() && getGraph().zoom(1.25) }, "Zoom in"),
    h("button", { type: "button", class: "small", onclick: () => getGraph() && getGraph().zoom(0.8) }, "Zoom out"),
    h("button", { type: "button", class: "small", onclick: () => getGraph() && getGraph().fit() }, "Fit"),
    h("span", { class: "muted small" }, "Drag to pan, wheel to zoom, click a node for details, double-click to open it."));
}

export function legend(items) {
  return h("div", { class: "legend", "aria-hidden": "true" }, items.map(([label, cssVar, shape]) => h("span", null,
    h("i", { style: { border: `2px solid var(${cssVar})`, borderRadius: shape === "ellipse" ? "50%" : "3px" } }), label)));
}
