// Small helpers shared by every page: DOM building, the API client, formatting.

export const API = "/api/v1";

/** h("a", {href: "/x", class: "y"}, "text", child) -> element. Text is never parsed as HTML. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
      else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (value === true) el.setAttribute(key, "");
      else el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** el.append(...) that skips null/undefined/false and flattens arrays (the DOM's own would print "null"). */
export function put(el, ...children) {
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export class ApiError extends Error {
  constructor(body, status, retryAfter) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.body = body || {};
    this.status = status;
    this.retryAfter = retryAfter || null; // seconds, from a 429's Retry-After
  }
}

/** The page's server: a team server (`groundwork server`) logs in; the single-user `groundwork ui` does not. */
export const TEAM = (document.querySelector('meta[name="groundwork-server"]') || {}).content === "team";

/** A team server's web session: who is logged in, where, and the CSRF token its writes carry (js/team.js fills it). */
export const session = { user: null, project: null, role: null, serverAdmin: false, csrf: null, projects: [] };

/** This server's write token, from the page it served (a write without it is refused). */
function writeToken() {
  const meta = document.querySelector('meta[name="groundwork-token"]');
  return meta ? meta.getAttribute("content") || "" : "";
}

/** GET (or send) JSON; throws ApiError carrying the canonical error body. Writes carry the token. */
export async function api(path, params, options) {
  const url = new URL(API + path, location.origin);
  if (params) {
    for (const [key, value] of Object.entries(params)) {
      if (value === undefined || value === null || value === "") continue;
      if (Array.isArray(value)) value.forEach((v) => url.searchParams.append(key, v));
      else url.searchParams.set(key, value);
    }
  }
  const init = { headers: { Accept: "application/json" }, ...(options || {}) };
  const method = (init.method || "GET").toUpperCase();
  if (method !== "GET" && method !== "HEAD") {
    if (TEAM) { if (session.csrf) init.headers["X-CSRF-Token"] = session.csrf; }
    else init.headers["X-Groundwork-Token"] = writeToken();
  }
  if (init.json !== undefined) {
    init.body = JSON.stringify(init.json);
    init.headers["Content-Type"] = "application/json";
    delete init.json;
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError({ error: "Server unreachable", message: "the groundwork server did not answer", hint: "is `groundwork ui` still running?" }, 0);
  }
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok || !body || body.ok === false) {
    throw new ApiError(body, response.status, parseInt(response.headers.get("Retry-After") || "", 10) || null);
  }
  return body;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// -- formatting ------------------------------------------------------------------------------
export function fmtTime(ts) {
  if (ts === null || ts === undefined) return "–";
  const d = new Date(ts * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtAgo(ts) {
  if (!ts) return "";
  const s = Date.now() / 1000 - ts;
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return `${(seconds * 1000).toFixed(0)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${String(Math.floor(seconds % 60)).padStart(2, "0")}s`;
  return `${Math.floor(seconds / 3600)}h ${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")}m`;
}

export function fmtNum(value) {
  if (value === null || value === undefined) return "nan";
  if (typeof value !== "number") return String(value);
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e12) return value.toLocaleString("en-US");
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e9)) return value.toExponential(4);
  return Number(value.toPrecision(6)).toString();
}

export function fmtCount(n) {
  return n === null || n === undefined ? "?" : Number(n).toLocaleString("en-US");
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export const shortId = (id) => (id ? id.slice(0, 12) : "");

export function statusBadge(status) {
  const label = status === "finished" ? "finished" : status;
  return h("span", { class: `badge ${status || "neutral"}` }, label || "–");
}

// -- feedback --------------------------------------------------------------------------------
export function toast(message, kind) {
  const box = document.getElementById("toast");
  const msg = h("div", { class: `msg ${kind || ""}` }, message);
  box.appendChild(msg);
  setTimeout(() => msg.remove(), kind === "error" ? 6000 : 3000);
}

export function errorBox(err) {
  const body = (err && err.body) || {};
  return h("div", { class: "error-box", role: "alert" },
    h("strong", null, body.error || "Error"), ": ", body.message || String(err.message || err),
    body.hint ? h("div", { class: "hint" }, body.hint) : null);
}

export function copyButton(text, label) {
  return h("button", {
    type: "button", class: "small ghost", title: `Copy ${label || "to clipboard"}`, "aria-label": `Copy ${label || ""}`,
    onclick: async () => {
      try { await navigator.clipboard.writeText(text); toast("Copied"); } catch (_) { toast(text); }
    },
  }, "copy");
}

/** A table from rows of cells; `head` is a list of header labels (or {label, num}); `id` names the table. */
export function table(head, rows, id, cls) {
  return h("div", { class: "table-wrap" },
    h("table", { class: `grid ${cls || ""}`, id: id || null },
      head ? h("thead", null, h("tr", null, head.map((c) => h("th", { scope: "col", class: c && c.num ? "num" : null }, c && c.label !== undefined ? c.label : c)))) : null,
      h("tbody", null, rows)));
}

export function kvTable(entries, emptyText) {
  if (!entries.length) return h("p", { class: "muted" }, emptyText || "None.");
  return table(null, entries.map(([k, v]) => h("tr", null, h("th", { scope: "row", class: "mono" }, k), h("td", { class: "wrap mono" }, v))), null, "kv");
}

/** Repeating work (live updates) that stops when the page is left. */
export class Poller {
  constructor(fn, ms) {
    this.fn = fn;
    this.ms = ms;
    this.timer = null;
    this.stopped = false;
  }
  start() {
    const tick = async () => {
      if (this.stopped) return;
      try { await this.fn(); } catch (_) { /* shown by the page */ }
      if (!this.stopped) this.timer = setTimeout(tick, document.hidden ? this.ms * 4 : this.ms);
    };
    this.timer = setTimeout(tick, this.ms);
    return this;
  }
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

/** Marks for tests and benchmarks: performance.now() when something became visible. */
export function mark(name) {
  window.__gw = window.__gw || {};
  window.__gw[name] = performance.now();
  document.documentElement.dataset[name.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = "1";
}

export function theme() {
  return document.documentElement.dataset.theme === "dark" ? "dark" : "light";
}

/** Keyboard: arrow keys move between a tablist's tabs (WAI-ARIA tabs pattern). */
export function tabs(items, selected, onSelect) {
  const list = h("div", { class: "tabs", role: "tablist" });
  const buttons = items.map((item) => h("button", {
    type: "button", role: "tab", id: `tab-${item.id}`, "aria-selected": String(item.id === selected),
    "aria-controls": "tabpanel", tabindex: item.id === selected ? "0" : "-1",
    onclick: () => onSelect(item.id),
  }, item.label));
  list.addEventListener("keydown", (event) => {
    const index = buttons.indexOf(document.activeElement);
    if (index < 0) return;
    let next = null;
    if (event.key === "ArrowRight") next = (index + 1) % buttons.length;
    else if (event.key === "ArrowLeft") next = (index - 1 + buttons.length) % buttons.length;
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = buttons.length - 1;
    if (next !== null) {
      event.preventDefault();
      buttons[next].focus();
      onSelect(items[next].id);
    }
  });
  buttons.forEach((b) => list.appendChild(b));
  return list;
}
