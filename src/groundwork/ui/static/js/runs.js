// The runs table: server-side filter, sort, paging, column choice, selection for comparison.
import { setQuery } from "./app.js";
import {
  ApiError, Poller, api, clear, errorBox, fmtCount, fmtDuration, fmtNum, fmtTime, h, mark, put, shortId, statusBadge, toast,
} from "./util.js";

const PAGE_SIZES = [25, 50, 100, 200, 500];
const STATUSES = ["running", "finished", "failed", "crashed", "cached", "pruned"];
const EXAMPLES = [
  "metrics.acc > 0.9",
  "params.lr = 0.01 and status = 'finished'",
  "params.optimizer in ('adam', 'sgd')",
  "name ~ 'baseline%'",
  "tags.team = 'vision' and not kind = 'step'",
  "created > '2026-01-01' and duration < 600",
];
const FIXED = [
  { id: "status", label: "Status", field: "status" },
  { id: "name", label: "Name", field: "name" },
  { id: "created", label: "Created", field: "created", first: "desc" },
  { id: "duration", label: "Duration", field: "duration", first: "desc", num: true },
  { id: "user", label: "User", field: "user" },
  { id: "commit", label: "Commit", field: "commit" },
];

function selection() {
  try { return new Set(JSON.parse(sessionStorage.getItem("gw-selected") || "[]")); } catch (_) { return new Set(); }
}
function saveSelection(set) { sessionStorage.setItem("gw-selected", JSON.stringify([...set])); }

export function render(main, ctx) {
  const q = ctx.query;
  const state = {
    filter: q.get("filter") || "",
    order: q.get("order") || "",
    offset: Math.max(0, parseInt(q.get("offset") || "0", 10) || 0),
    limit: PAGE_SIZES.includes(parseInt(q.get("limit"), 10)) ? parseInt(q.get("limit"), 10) : 50,
    cols: q.getAll("col"),
    selected: selection(),
    rows: [],
    columns: [],
    total: null,
    activeRow: 0,
  };
  let poller = null;
  let loadToken = 0;

  const countLabel = h("span", { class: "meta", id: "runs-count", "aria-live": "polite" });
  const input = h("input", {
    type: "search", class: "filter-input mono", id: "filter", name: "filter", value: state.filter, spellcheck: "false",
    autocomplete: "off", placeholder: "Filter: metrics.acc > 0.9 and params.lr = 0.01   (press / to focus)",
    "aria-label": "Filter runs", "aria-describedby": "filter-error",
  });
  const filterError = h("div", { id: "filter-error", "aria-live": "polite" });
  const examples = h("select", { "aria-label": "Insert an example filter", class: "small" },
    h("option", { value: "" }, "Examples…"), EXAMPLES.map((e) => h("option", { value: e }, e)));
  examples.addEventListener("change", () => { if (examples.value) { input.value = examples.value; examples.value = ""; apply(); } });
  const form = h("form", { class: "toolbar", role: "search", onsubmit: (e) => { e.preventDefault(); apply(); } },
    h("div", { class: "grow" }, input),
    h("button", { type: "submit", class: "primary" }, "Apply"),
    examples);
  const statusChips = h("div", { class: "chips", "aria-label": "Quick filters by status" },
    STATUSES.map((s) => h("button", { type: "button", class: "small", onclick: () => addCondition(`status = '${s}'`) }, statusBadge(s))),
    h("button", { type: "button", class: "small", onclick: () => addCondition("not kind = 'step'") }, "hide pipeline steps"),
    h("button", { type: "button", class: "small ghost", onclick: () => { input.value = ""; apply(); } }, "clear filter"));
  const compareButton = h("button", { type: "button", class: "primary", id: "compare-selected", onclick: compare }, "Compare");
  const clearSel = h("button", { type: "button", onclick: () => { state.selected.clear(); saveSelection(state.selected); drawTable(); } }, "Clear selection");
  const columnsButton = h("button", { type: "button", id: "columns-button", "aria-haspopup": "dialog", "aria-expanded": "false", onclick: toggleColumns }, "Columns ▾");
  const sizeSelect = h("select", { "aria-label": "Runs per page" }, PAGE_SIZES.map((n) => h("option", { value: n, selected: n === state.limit }, `${n} / page`)));
  sizeSelect.addEventListener("change", () => { state.limit = parseInt(sizeSelect.value, 10); state.offset = 0; load(); });
  const tableBox = h("div", { id: "runs-table-box" });
  const pager = h("div", { class: "pager" });
  const columnsBox = h("div", { class: "popover hidden", role: "dialog", "aria-label": "Choose columns" });

  put(main, 
    h("div", { class: "page-head" }, h("h1", null, "Runs"), countLabel),
    form, filterError,
    h("div", { class: "toolbar" }, statusChips, h("span", { class: "spacer" }), columnsButton, sizeSelect, clearSel, compareButton),
    h("div", { style: { position: "relative" } }, columnsBox),
    tableBox, pager,
    h("p", { class: "kbd-help" }, "Keys: ", h("kbd", null, "/"), " filter · ", h("kbd", null, "↑"), h("kbd", null, "↓"), " or ",
      h("kbd", null, "j"), h("kbd", null, "k"), " move · ", h("kbd", null, "Enter"), " open · ", h("kbd", null, "x"),
      " select · ", h("kbd", null, "c"), " compare · ", h("kbd", null, "[ ]"), " pages"));

  function addCondition(condition) {
    const current = input.value.trim();
    input.value = current ? `${current.includes(" or ") ? `(${current})` : current} and ${condition}` : condition;
    apply();
  }

  function apply() {
    state.filter = input.value.trim();
    state.offset = 0;
    load();
  }

  function syncUrl() {
    setQuery({ filter: state.filter, order: state.order, offset: state.offset || "", limit: state.limit === 50 ? "" : state.limit, col: state.cols });
  }

  async function load(silent) {
    const token = ++loadToken;
    syncUrl();
    if (!silent) tableBox.setAttribute("aria-busy", "true");
    try {
      const body = await api("/runs", { filter: state.filter, order_by: state.order, limit: state.limit, offset: state.offset, columns: state.cols });
      if (token !== loadToken || !ctx.isCurrent()) return;
      clear(filterError);
      state.rows = body.runs;
      state.columns = body.columns;
      state.more = body.more;
      if (body.total !== null && body.total !== undefined) state.total = body.total;
      else if (!silent) state.total = null;
      drawTable();
      drawPager();
      mark("runs-table");
      if (body.total === null || body.total === undefined) {
        const counted = await api("/runs/count", { filter: state.filter });
        if (token !== loadToken || !ctx.isCurrent()) return;
        state.total = counted.total;
        drawPager();
        mark("runs-count");
      }
      const live = state.rows.some((r) => r.status === "running");
      if (live && !poller) poller = new Poller(() => load(true), 4000).start();
      if (!live && poller) { poller.stop(); poller = null; }
    } catch (err) {
      if (token !== loadToken) return;
      if (err instanceof ApiError && err.body && err.body.column !== undefined && err.body.expression !== undefined) {
        showFilterError(err.body);
      } else {
        clear(filterError).appendChild(errorBox(err));
      }
      mark("runs-error");
    } finally {
      if (token === loadToken) tableBox.removeAttribute("aria-busy");
    }
  }

  function showFilterError(body) {
    clear(filterError);
    const children = [h("strong", null, body.error || "Invalid filter"), ": ", body.message];
    if (body.column && body.expression) {
      const caret = " ".repeat(Math.max(0, body.column - 1)) + "^";
      children.push(h("pre", { "aria-hidden": "true" }, body.expression, "\n", h("span", { class: "caret" }, caret)));
    }
    if (body.hint) children.push(h("div", { class: "muted small" }, body.hint));
    filterError.appendChild(h("div", { class: "field-error", role: "alert", id: "filter-error-box" }, children));
    input.setAttribute("aria-invalid", "true");
    if (body.column) {
      input.focus();
      input.setSelectionRange(body.column - 1, body.column);
    }
  }

  function sortSpec(field) {
    const spec = state.order;
    if (spec === field) return "asc";
    if (spec === `-${field}`) return "desc";
    return null;
  }

  function toggleSort(field, first) {
    const current = sortSpec(field);
    if (current === null) state.order = first === "desc" ? `-${field}` : field;
    else if (current === (first === "desc" ? "desc" : "asc")) state.order = first === "desc" ? field : `-${field}`;
    else state.order = "";
    state.offset = 0;
    load();
  }

  function header(label, field, opts) {
    const dir = sortSpec(field);
    const arrow = dir === "asc" ? "▲" : dir === "desc" ? "▼" : "";
    const ariaSort = dir === "asc" ? "ascending" : dir === "desc" ? "descending" : "none";
    return h("th", { scope: "col", "aria-sort": ariaSort, class: opts && opts.num ? "num" : null, title: `Sort by ${field}` },
      h("button", { type: "button", class: "sort", onclick: () => toggleSort(field, opts && opts.first) },
        opts && opts.ns ? h("span", { class: "ns" }, `${opts.ns}.`) : null, label, h("span", { "aria-hidden": "true" }, arrow)));
  }

  function drawTable() {
    clear(tableBox);
    compareButton.textContent = `Compare (${state.selected.size})`;
    compareButton.disabled = state.selected.size < 2;
    clearSel.disabled = state.selected.size === 0;
    if (!state.rows.length) {
      tableBox.appendChild(h("div", { class: "empty", id: "runs-empty" }, state.filter ? "No run matches this filter." : h("span", null, "No runs yet. Record one with ", h("code", null, "groundwork run -- python train.py"), " or ", h("code", null, "groundwork demo"), ".")));
      return;
    }
    const dyn = state.columns.map((c) => { const [ns, ...rest] = c.split("."); return { ns, key: rest.join("."), id: c }; });
    const head = h("tr", null,
      h("th", { scope: "col" }, h("input", {
        type: "checkbox", "aria-label": "Select every run on this page",
        checked: state.rows.every((r) => state.selected.has(r.id)),
        onchange: (e) => { state.rows.forEach((r) => (e.target.checked ? state.selected.add(r.id) : state.selected.delete(r.id))); saveSelection(state.selected); drawTable(); },
      })),
      FIXED.map((c) => header(c.label, c.field, c)),
      dyn.map((c) => header(c.key, `${c.ns}.${/^[\w\-/.]+$/.test(c.key) ? c.key : "`" + c.key.replace(/`/g, "``") + "`"}`, { ns: c.ns, num: c.ns === "metrics", first: c.ns === "metrics" ? "desc" : "asc" })));
    const body = h("tbody", { onkeydown: rowKeys });
    state.rows.forEach((run, i) => {
      const selected = state.selected.has(run.id);
      const tr = h("tr", { class: selected ? "selected" : null, tabindex: i === state.activeRow ? "0" : "-1", dataset: { id: run.id, index: i }, "aria-selected": String(selected) },
        h("td", null, h("input", {
          type: "checkbox", "aria-label": `Select ${run.name}`, checked: selected, tabindex: "-1",
          onchange: (e) => toggleRow(run.id, e.target.checked),
        })),
        h("td", null, statusBadge(run.status)),
        h("td", null, h("a", { href: `/runs/${run.id}`, tabindex: "-1", class: "run-link" }, run.name), run.kind !== "run" ? [" ", h("span", { class: "badge neutral" }, run.kind)] : null),
        h("td", { class: "nowrap", title: run.id }, fmtTime(run.created_at)),
        h("td", { class: "num" }, fmtDuration(run.duration)),
        h("td", null, run.user || ""),
        h("td", { class: "mono" }, run.git_commit ? run.git_commit.slice(0, 8) : ""),
        dyn.map((c) => {
          const source = c.ns === "params" ? run.params : c.ns === "metrics" ? run.metrics : run.tags;
          const has = Object.prototype.hasOwnProperty.call(source, c.key);
          const value = source[c.key];
          return h("td", { class: c.ns === "metrics" ? "num mono" : "mono" }, has ? (c.ns === "metrics" ? fmtNum(value) : value) : "");
        }));
      tr.addEventListener("dblclick", () => ctx.navigate(`/runs/${run.id}`));
      tr.addEventListener("focus", () => { state.activeRow = i; });
      body.appendChild(tr);
    });
    tableBox.appendChild(h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "runs-table", "aria-label": "Runs", "aria-rowcount": state.total || undefined }, h("thead", null, head), body)));
  }

  function toggleRow(id, on) {
    if (on) state.selected.add(id); else state.selected.delete(id);
    saveSelection(state.selected);
    drawTable();
    const row = tableBox.querySelector(`tr[data-id="${id}"]`);
    if (row) row.focus();
  }

  function rowKeys(event) {
    const rows = [...tableBox.querySelectorAll("tbody tr")];
    const row = event.target.closest("tr");
    if (!row || event.target.tagName === "INPUT") return;
    const index = rows.indexOf(row);
    const move = (to) => {
      const next = rows[Math.max(0, Math.min(rows.length - 1, to))];
      rows.forEach((r) => r.setAttribute("tabindex", "-1"));
      next.setAttribute("tabindex", "0");
      next.focus();
      state.activeRow = rows.indexOf(next);
    };
    if (event.key === "ArrowDown" || event.key === "j") { event.preventDefault(); move(index + 1); }
    else if (event.key === "ArrowUp" || event.key === "k") { event.preventDefault(); move(index - 1); }
    else if (event.key === "Home") { event.preventDefault(); move(0); }
    else if (event.key === "End") { event.preventDefault(); move(rows.length - 1); }
    else if (event.key === "Enter") { event.preventDefault(); ctx.navigate(`/runs/${row.dataset.id}`); }
    else if (event.key === " " || event.key === "x") { event.preventDefault(); toggleRow(row.dataset.id, !state.selected.has(row.dataset.id)); }
  }

  function drawPager() {
    clear(pager);
    const first = state.rows.length ? state.offset + 1 : 0;
    const last = state.offset + state.rows.length;
    const total = state.total;
    countLabel.textContent = total === null ? "counting…" : `${fmtCount(total)} run${total === 1 ? "" : "s"}${state.filter ? " match" : ""}`;
    const hasNext = total === null ? state.more : last < total;
    put(pager, 
      h("button", { type: "button", disabled: state.offset === 0, onclick: () => go(0), "aria-label": "First page" }, "«"),
      h("button", { type: "button", disabled: state.offset === 0, onclick: () => go(state.offset - state.limit), id: "prev-page" }, "‹ Previous"),
      h("span", { class: "muted", id: "page-label" }, `${fmtCount(first)}–${fmtCount(last)} of ${total === null ? "…" : fmtCount(total)}`),
      h("button", { type: "button", disabled: !hasNext, onclick: () => go(state.offset + state.limit), id: "next-page" }, "Next ›"),
      h("button", { type: "button", disabled: total === null || !hasNext, onclick: () => go(Math.floor((total - 1) / state.limit) * state.limit), "aria-label": "Last page" }, "»"));
  }

  function go(offset) {
    state.offset = Math.max(0, offset);
    state.activeRow = 0;
    load();
  }

  function compare() {
    if (state.selected.size < 2) { toast("Select at least two runs (x or the checkboxes)"); return; }
    ctx.navigate(`/compare?runs=${[...state.selected].join(",")}`);
  }

  async function toggleColumns() {
    const open = columnsBox.classList.contains("hidden");
    columnsButton.setAttribute("aria-expanded", String(open));
    if (!open) { columnsBox.classList.add("hidden"); return; }
    columnsBox.classList.remove("hidden");
    clear(columnsBox).appendChild(h("p", { class: "muted" }, "Loading keys…"));
    try {
      const keys = await api("/runs/columns");
      const chosen = new Set(state.columns);
      const search = h("input", { type: "search", placeholder: "Search keys", "aria-label": "Search keys", style: { width: "100%", marginBottom: "8px" } });
      const groups = ["params", "metrics", "tags"].map((ns) => h("fieldset", { dataset: { ns } },
        h("legend", null, ns),
        keys[ns].length ? keys[ns].map((key) => h("label", { dataset: { key: `${ns}.${key}` } },
          h("input", { type: "checkbox", value: `${ns}.${key}`, checked: chosen.has(`${ns}.${key}`) }), key)) : h("span", { class: "muted small" }, "none")));
      search.addEventListener("input", () => {
        const needle = search.value.toLowerCase();
        columnsBox.querySelectorAll("label[data-key]").forEach((l) => l.classList.toggle("hidden", !l.dataset.key.toLowerCase().includes(needle)));
      });
      const done = () => {
        state.cols = [...columnsBox.querySelectorAll("input[type=checkbox]:checked")].map((i) => i.value);
        if (!state.cols.length) state.cols = [];
        columnsBox.classList.add("hidden");
        columnsButton.setAttribute("aria-expanded", "false");
        columnsButton.focus();
        load();
      };
      put(clear(columnsBox), search, ...groups,
        h("div", { class: "toolbar" },
          h("button", { type: "button", class: "primary", onclick: done }, "Show columns"),
          h("button", { type: "button", onclick: () => { state.cols = []; columnsBox.classList.add("hidden"); load(); } }, "Automatic")));
      columnsBox.addEventListener("keydown", (e) => { if (e.key === "Escape") { columnsBox.classList.add("hidden"); columnsButton.focus(); } });
      search.focus();
    } catch (err) {
      clear(columnsBox).appendChild(errorBox(err));
    }
  }

  const keys = (event) => {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) {
      if (event.key === "Escape" && target === input) { input.blur(); const row = tableBox.querySelector("tbody tr[tabindex='0']"); if (row) row.focus(); }
      return;
    }
    if (event.key === "/") { event.preventDefault(); input.focus(); input.select(); }
    else if (event.key === "c") compare();
    else if (event.key === "]") { if (!pager.querySelector("#next-page").disabled) go(state.offset + state.limit); }
    else if (event.key === "[") { if (state.offset > 0) go(state.offset - state.limit); }
  };
  document.addEventListener("keydown", keys);
  load();
  return () => {
    document.removeEventListener("keydown", keys);
    if (poller) poller.stop();
    loadToken++;
  };
}

export { shortId };
