// The single-page app: a tiny router over history.pushState, the theme, and global keys.
import { TEAM, api, clear, errorBox, h, session } from "./util.js";

const ROUTES = [
  [/^\/(?:runs\/?)?$/, "runs", "runs"],
  [/^\/runs\/([^/]+)\/?$/, "run", "runs"],
  [/^\/compare\/?$/, "compare", "compare"],
  [/^\/lineage(?:\/(.+))?\/?$/, "lineage", "lineage"],
  [/^\/models\/?$/, "models", "models"],
  [/^\/models\/([^/]+)\/?$/, "model", "models"],
  [/^\/pipelines\/?$/, "pipelines", "pipelines"],
  [/^\/pipelines\/([^/]+)\/?$/, "pipeline", "pipelines"],
  [/^\/artifacts\/([^/]+)\/?$/, "artifact", "runs"],
  [/^\/sweeps\/?$/, "sweeps", "sweeps"],
  [/^\/sweeps\/([^/]+)\/?$/, "sweep", "sweeps"],
  [/^\/monitor\/?$/, "monitor", "monitor"],
  [/^\/monitor\/([^/]+)\/?$/, "monitored", "monitor"],
  [/^\/login\/?$/, "login", null],
  [/^\/tokens\/?$/, "tokens", "tokens"],
  [/^\/audit\/?$/, "audit", "audit"],
];

const PAGES = {
  runs: () => import("./runs.js").then((m) => m.render),
  run: () => import("./run.js").then((m) => m.render),
  compare: () => import("./compare.js").then((m) => m.render),
  lineage: () => import("./lineage.js").then((m) => m.render),
  models: () => import("./models.js").then((m) => m.renderList),
  model: () => import("./models.js").then((m) => m.renderModel),
  pipelines: () => import("./pipelines.js").then((m) => m.renderList),
  pipeline: () => import("./pipelines.js").then((m) => m.renderPipeline),
  artifact: () => import("./artifact.js").then((m) => m.render),
  sweeps: () => import("./sweeps.js").then((m) => m.renderList),
  sweep: () => import("./sweeps.js").then((m) => m.renderSweep),
  monitor: () => import("./monitor.js").then((m) => m.renderList),
  monitored: () => import("./monitor.js").then((m) => m.renderTarget),
  login: () => import("./team.js").then((m) => m.renderLogin),
  tokens: () => import("./team.js").then((m) => m.renderTokens),
  audit: () => import("./team.js").then((m) => m.renderAudit),
};

let cleanup = null;
let renderToken = 0;

export function navigate(url, options) {
  const target = new URL(url, location.origin);
  if (options && options.replace) history.replaceState(null, "", target.pathname + target.search + target.hash);
  else history.pushState(null, "", target.pathname + target.search + target.hash);
  return route(true);
}

/** Change the query string of the current page without drawing it again. */
export function setQuery(params) {
  const url = new URL(location.href);
  for (const [key, value] of Object.entries(params)) {
    url.searchParams.delete(key);
    if (Array.isArray(value)) value.forEach((v) => url.searchParams.append(key, v));
    else if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  history.replaceState(null, "", url.pathname + url.search);
}

/** Start fetching a page's big library while its data loads (they do not depend on each other). */
function warmUp(page, query) {
  const charts = (page === "run" && query.get("tab") === "charts") || page === "compare";
  if (charts) import("./lazy.js").then((m) => m.echarts()).catch(() => {});
  if (page === "lineage" || page === "pipeline") import("./lazy.js").then((m) => m.cytoscape()).catch(() => {});
  if (page === "monitored") import("./lazy.js").then((m) => m.echarts()).catch(() => {});
}

async function route(focus) {
  const token = ++renderToken;
  const path = decodeURIComponent(location.pathname);
  let match = null;
  let page = null;
  let section = null;
  for (const [pattern, name, nav] of ROUTES) {
    match = pattern.exec(path);
    if (match) { page = name; section = nav; break; }
  }
  if (TEAM && !session.user && page) { page = "login"; section = null; } // a team server: log in first, then this page
  if (cleanup) { try { cleanup(); } catch (_) { /* ignore */ } cleanup = null; }
  document.querySelectorAll("[data-nav]").forEach((a) => {
    if (a.dataset.nav === section && !a.classList.contains("brand")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  const main = document.getElementById("main");
  if (!page) {
    clear(main).appendChild(h("div", { class: "empty" }, h("h1", null, "Page not found"), h("p", null, h("a", { href: "/runs" }, "Back to the runs"))));
    return;
  }
  warmUp(page, new URLSearchParams(location.search));
  try {
    const render = await PAGES[page]();
    if (token !== renderToken) return;
    clear(main);
    const query = new URLSearchParams(location.search);
    const result = await render(main, { params: match.slice(1).map((p) => (p === undefined ? p : p)), query, navigate, isCurrent: () => token === renderToken });
    if (token !== renderToken) { if (typeof result === "function") result(); return; }
    cleanup = typeof result === "function" ? result : null;
    if (focus) {
      const heading = main.querySelector("h1");
      (heading || main).setAttribute("tabindex", "-1");
      (heading || main).focus({ preventScroll: false });
    }
  } catch (err) {
    if (token !== renderToken) return;
    if (TEAM && err && err.status === 401 && page !== "login") { // the session ended (expired, revoked, logged out elsewhere)
      const { loggedOut } = await import("./team.js");
      loggedOut();
      route(focus);
      return;
    }
    clear(main).appendChild(errorBox(err));
    console.error(err);
  }
}

// -- links: same-origin clicks stay in the app ----------------------------------------------------
document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest("a[href]");
  if (!link || link.target || link.hasAttribute("download")) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/static/")) return;
  event.preventDefault();
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  navigate(url.href);
});
window.addEventListener("popstate", () => route(false));

// -- theme ----------------------------------------------------------------------------------------
const THEMES = ["auto", "light", "dark"];
const media = window.matchMedia("(prefers-color-scheme: dark)");

function applyTheme() {
  const choice = localStorage.getItem("gw-theme") || "auto";
  const dark = choice === "dark" || (choice === "auto" && media.matches);
  document.documentElement.dataset.theme = dark ? "dark" : "light";
  const button = document.getElementById("theme-toggle");
  if (button) {
    const label = { auto: "◐ Auto", light: "☀ Light", dark: "☾ Dark" }[choice];
    button.textContent = label;
    button.setAttribute("aria-label", `Colour theme: ${choice} (press to change)`);
  }
  window.dispatchEvent(new Event("gw-theme"));
}

function cycleTheme() {
  const current = localStorage.getItem("gw-theme") || "auto";
  localStorage.setItem("gw-theme", THEMES[(THEMES.indexOf(current) + 1) % THEMES.length]);
  applyTheme();
}

media.addEventListener("change", applyTheme);
document.getElementById("theme-toggle").addEventListener("click", cycleTheme);
applyTheme();

// -- global keys: t theme; g then r/c/p/m/l to go to a section ---------------------------------------
let pendingG = false;
document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
  if (pendingG) {
    pendingG = false;
    const to = { r: "/runs", c: "/compare", p: "/pipelines", m: "/models", l: "/lineage" }[event.key];
    if (to) { event.preventDefault(); navigate(to); }
    return;
  }
  if (event.key === "g") { pendingG = true; setTimeout(() => { pendingG = false; }, 1200); }
  else if (event.key === "t") cycleTheme();
});

// The store's name in the top bar: not urgent, so asked for after the first page has its data.
setTimeout(() => api("").then((info) => {
  const label = document.getElementById("store-label");
  if (label && info.store) { label.textContent = info.store.replace(/^sqlite:\/\/\//, ""); label.title = `metadata store ${info.store}`; }
}).catch(() => {}), 1500);

async function boot() {
  if (TEAM) await (await import("./team.js")).start({ navigate, route: () => route(true) });
  route(false);
}

boot();
