// A team server's pages (`groundwork server`): the login form, the user menu (project switcher, log out),
// your API tokens, and the audit log. The single-user `groundwork ui` has no logins: there these pages say so.
import { TEAM, api, clear, fmtAgo, fmtTime, h, put, session, table, toast } from "./util.js";

const ROLES = ["viewer", "editor", "maintainer", "admin"];
const EXPIRIES = [["7d", "7 days"], ["30d", "30 days"], ["90d", "90 days"], ["365d", "1 year"], ["never", "never"]];
const AUDIT_PAGE = 50;
const ACTIONS = ["auth", "token", "run", "model", "member", "project", "user", "blob"];

let hooks = { navigate: () => undefined, route: () => undefined };

/** Called once by app.js on a team server's page: who is logged in (if anyone), and the menu. */
export async function start(appHooks) {
  hooks = appHooks;
  try {
    await refresh();
  } catch (_) {
    loggedOut(); // 401: nobody yet (anything else shows on the login form's first try)
  }
  drawMenu();
}

async function refresh() {
  const me = await api("/auth/me");
  let projects = me.projects || [me.project];
  if (me.server_admin) {
    try { projects = (await api("/projects")).projects.map((p) => p.name); } catch (_) { /* keep the member's list */ }
  }
  Object.assign(session, {
    user: me.user, project: me.project, role: me.role, serverAdmin: Boolean(me.server_admin),
    csrf: me.csrf || session.csrf, projects: [...new Set([...projects, me.project])].sort(),
  });
}

/** Forget the session (after a logout, or when the server answered 401). */
export function loggedOut() {
  Object.assign(session, { user: null, project: null, role: null, serverAdmin: false, csrf: null, projects: [] });
  drawMenu();
}

function drawMenu() {
  const menu = document.getElementById("team-menu");
  if (!menu) return;
  clear(menu);
  menu.hidden = !session.user;
  if (!session.user) return;
  const picker = session.projects.length > 1
    ? h("select", { id: "project-switch", "aria-label": "Project", title: "Switch project",
      onchange: (event) => switchProject(event.target.value) },
    session.projects.map((p) => h("option", { value: p, selected: p === session.project }, p)))
    : h("span", { id: "project-name", class: "mono small", title: "Project" }, session.project);
  put(menu,
    h("label", { class: "small muted", for: session.projects.length > 1 ? "project-switch" : null }, "project"), picker,
    h("a", { href: "/tokens", "data-nav": "tokens" }, "Tokens"),
    h("a", { href: "/audit", "data-nav": "audit" }, "Audit"),
    h("span", { id: "team-user", class: "small", title: `${session.user}: ${session.role} in ${session.project}` },
      h("strong", null, session.user), " ", h("span", { class: "muted" }, session.role)),
    h("button", { type: "button", id: "logout", class: "small", onclick: logout }, "Log out"));
}

async function switchProject(project) {
  try {
    const answer = await api("/auth/project", null, { method: "POST", json: { project } });
    session.csrf = answer.csrf;
    await refresh();
    drawMenu();
    toast(`Now working in project ${session.project}`);
    hooks.route();
  } catch (err) {
    toast(err.message, "error");
    drawMenu();
  }
}

async function logout() {
  try {
    await api("/auth/logout", null, { method: "POST" });
  } catch (err) {
    if (err.status !== 401) { toast(err.message, "error"); return; } // 401: the session had ended already
  }
  loggedOut();
  hooks.navigate("/login");
}

// -- the login form ------------------------------------------------------------------------------------
function field(label, input) {
  return h("div", { class: "row" }, h("label", { for: input.id }, label), input);
}

function waitText(seconds) {
  if (seconds < 90) return `${seconds} s`;
  return `${Math.ceil(seconds / 60)} min`;
}

function loginError(err) {
  if (err.status === 429) {
    const wait = err.retryAfter ? ` Try again in ${waitText(err.retryAfter)}.` : " Try again later.";
    return h("div", { class: "error-box", id: "login-error", "data-status": "429" },
      h("strong", null, "Too many failed logins."), wait,
      h("div", { class: "hint" }, "After repeated wrong passwords, logins for this name (or from this address) pause for a while."));
  }
  const body = err.body || {};
  const text = err.status === 401 ? "Wrong name or password." : (body.message || err.message);
  return h("div", { class: "error-box", id: "login-error", "data-status": String(err.status || 0) },
    h("strong", null, text), body.hint && err.status !== 401 ? h("div", { class: "hint" }, body.hint) : null);
}

function afterLogin(query) {
  if (location.pathname !== "/login" && location.pathname !== "/login/") return location.pathname + location.search;
  const next = query.get("next") || "";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/runs";
}

export async function renderLogin(main, ctx) {
  if (!TEAM) {
    put(main, h("div", { class: "empty" }, h("h1", null, "No login here"),
      h("p", null, "This is the single-user viewer (groundwork ui): it needs no login. ", h("a", { href: "/runs" }, "Go to the runs"))));
    return undefined;
  }
  if (session.user) { ctx.navigate(afterLogin(ctx.query), { replace: true }); return undefined; }
  const name = h("input", { id: "login-name", name: "username", autocomplete: "username", required: true, maxlength: 64 });
  const password = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const project = h("input", { id: "login-project", name: "project", maxlength: 64, placeholder: "your first project" });
  const message = h("div", { id: "login-message", "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary", id: "login-submit" }, "Log in");
  const form = h("form", { class: "card login-card", id: "login-form", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Log in to groundwork"),
    h("p", { class: "muted" }, "This is a team server: log in with the name and password your admin gave you."),
    field("Name", name), field("Password", password), field("Project (optional)", project),
    message, h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(message);
    submit.disabled = true;
    try {
      await api("/auth/login", null, { method: "POST",
        json: { name: name.value.trim(), password: password.value, project: project.value.trim() || undefined } });
      await refresh();
      drawMenu();
      ctx.navigate(afterLogin(ctx.query), { replace: true });
    } catch (err) {
      message.appendChild(loginError(err));
      password.value = "";
      (err.status === 401 ? password : name).focus();
    } finally {
      submit.disabled = false;
    }
  });
  main.appendChild(form);
  name.focus();
  return undefined;
}

function teamOnly(main, what) {
  put(main, h("p", { class: "empty", id: "team-only" }, `${what} belong to a team server (groundwork server). `,
    "This single-user viewer (groundwork ui) has no users, tokens or audit log."));
}

// -- API tokens -------------------------------------------------------------------------------------------
export async function renderTokens(main) {
  put(main, h("div", { class: "page-head" }, h("h1", null, "API tokens"),
    TEAM ? h("span", { class: "meta" }, `${session.user}'s tokens`) : null));
  if (!TEAM) { teamOnly(main, "API tokens"); return undefined; }
  const list = h("div", { id: "token-list" });
  const created = h("div", { id: "token-created" });
  put(main,
    h("p", { class: "muted" }, "A token lets a script, a CI job or another machine act as you in one project: ",
      h("code", null, "groundwork login URL"), " stores one, or set ", h("code", null, "GROUNDWORK_SERVER"), " and ",
      h("code", null, "GROUNDWORK_TOKEN"), "."),
    createForm(created, () => drawTokens(list)), created, h("h2", null, "Your tokens"), list);
  await drawTokens(list);
  return undefined;
}

function createForm(created, reload) {
  const mine = Math.max(0, ROLES.indexOf(session.role));
  const roles = ROLES.slice(0, mine + 1);
  const name = h("input", { id: "token-name", name: "name", required: true, maxlength: 255, placeholder: "what it is for: ci, laptop" });
  const role = h("select", { id: "token-role", name: "role" },
    roles.map((r) => h("option", { value: r, selected: r === (roles.includes("editor") ? "editor" : roles[roles.length - 1]) }, r)));
  const expires = h("select", { id: "token-expires", name: "expires" },
    EXPIRIES.map(([value, label]) => h("option", { value, selected: value === "90d" }, label)));
  const submit = h("button", { type: "submit", class: "primary", id: "token-create" }, "Create token");
  const form = h("form", { class: "toolbar card", id: "token-form", "aria-label": "Create a token" },
    h("label", { for: "token-name" }, "Name"), name, h("label", { for: "token-role" }, "Role"), role,
    h("label", { for: "token-expires" }, "Expires in"), expires,
    h("span", { class: "muted small" }, `project ${session.project}`), submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    clear(created);
    try {
      const made = await api("/tokens", null, { method: "POST", json: { name: name.value.trim(), role: role.value, expires: expires.value } });
      showOnce(created, made);
      name.value = "";
      await reload();
    } catch (err) {
      created.appendChild(h("div", { class: "error-box", role: "alert" }, h("strong", null, "The token was not made: "), err.message));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function showOnce(box, made) {
  const value = h("input", { id: "new-token-value", class: "mono token-value", readonly: true, value: made.token,
    "aria-label": "The new token", spellcheck: "false" });
  const copy = h("button", { type: "button", id: "new-token-copy", onclick: async () => {
    try {
      await navigator.clipboard.writeText(made.token);
      toast("Token copied");
    } catch (_) {
      value.select();
      toast("Press Ctrl+C (⌘C) to copy the selected token");
    }
  } }, "Copy");
  put(box, h("div", { class: "token-once", id: "new-token", role: "status" },
    h("p", null, h("strong", null, "Copy this token now: it is shown only once."),
      ` Whoever holds it acts as ${made.user} in project ${made.project} with the ${made.role} role`,
      made.expires_at ? ` until ${fmtTime(made.expires_at)}` : " (it never expires)",
      ", or until you revoke it. Keep it in a secret store (a CI secret), never in code or a shared file."),
    h("div", { class: "toolbar" }, value, copy)));
}

async function drawTokens(box) {
  const { tokens } = await api("/tokens");
  clear(box);
  if (!tokens.length) { box.appendChild(h("p", { class: "muted", id: "no-tokens" }, "No API tokens yet.")); return; }
  box.appendChild(table(["name", "id", "project", "role", "created", "expires", "last used", ""], tokens.map((t) => h("tr", { dataset: { token: t.id } },
    h("td", null, t.name), h("td", { class: "mono small" }, t.id), h("td", null, t.project), h("td", null, t.role),
    h("td", { title: fmtTime(t.created_at) }, fmtAgo(t.created_at) || fmtTime(t.created_at)),
    h("td", null, t.expires_at ? fmtTime(t.expires_at) : "never"),
    h("td", { title: t.last_used_at ? fmtTime(t.last_used_at) : "" }, t.last_used_at ? fmtAgo(t.last_used_at) : "never"),
    h("td", null, revokeButton(t, box)))), "tokens"));
}

function revokeButton(token, box) {
  let armed = false;
  const button = h("button", { type: "button", class: "small", "aria-label": `Revoke token ${token.name}` }, "Revoke");
  button.addEventListener("click", async () => {
    if (!armed) { // two steps: a revoked token cannot come back
      armed = true;
      button.textContent = "Really revoke?";
      button.classList.add("danger");
      return;
    }
    button.disabled = true;
    try {
      await api(`/tokens/${encodeURIComponent(token.id)}`, null, { method: "DELETE" });
      toast(`Token ${token.name} revoked`);
      await drawTokens(box);
    } catch (err) {
      toast(err.message, "error");
      button.disabled = false;
    }
  });
  return button;
}

// -- the audit log ----------------------------------------------------------------------------------------
function details(entry) {
  const pairs = Object.entries(entry.details || {}).filter(([, v]) => v !== null && v !== undefined);
  return pairs.map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
}

export async function renderAudit(main, ctx) {
  const where = TEAM ? (session.serverAdmin ? "every project (you are a server admin)" : `project ${session.project}`) : null;
  put(main, h("div", { class: "page-head" }, h("h1", null, "Audit log"), where ? h("span", { class: "meta" }, where) : null));
  if (!TEAM) { teamOnly(main, "The audit log and its users"); return undefined; }
  const action = ctx.query.get("action") || "";
  const actor = ctx.query.get("actor") || "";
  const before = ctx.query.get("before") || "";
  let body;
  try {
    body = await api("/audit", { action, actor, before, limit: AUDIT_PAGE });
  } catch (err) {
    if (err.status !== 403) throw err;
    main.appendChild(h("div", { class: "error-box", id: "audit-refused", role: "alert" },
      h("strong", null, "The audit log needs an admin."),
      ` Reading it takes the admin role in project ${session.project}; ${session.user} is ${session.role} there.`,
      h("div", { class: "hint" }, "Ask an admin of the project (groundwork server projects grant), or a server admin.")));
    return undefined;
  }
  const actionInput = h("input", { id: "audit-action", name: "action", value: action, list: "audit-actions",
    placeholder: "action or prefix: auth, token.create", "aria-label": "Action" });
  const actorInput = h("input", { id: "audit-actor", name: "actor", value: actor, placeholder: "user", "aria-label": "Who" });
  const form = h("form", { class: "toolbar", id: "audit-filters", role: "search" },
    h("label", { for: "audit-action" }, "Action"), actionInput,
    h("datalist", { id: "audit-actions" }, ACTIONS.map((a) => h("option", { value: a }))),
    h("label", { for: "audit-actor" }, "Who"), actorInput,
    h("button", { type: "submit", class: "primary" }, "Filter"),
    action || actor ? h("a", { href: "/audit", class: "btn ghost", id: "audit-clear" }, "Clear") : null);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    if (actionInput.value.trim()) params.set("action", actionInput.value.trim());
    if (actorInput.value.trim()) params.set("actor", actorInput.value.trim());
    ctx.navigate(`/audit${params.toString() ? `?${params}` : ""}`);
  });
  main.appendChild(form);
  if (!body.entries.length) {
    main.appendChild(h("p", { class: "empty", id: "audit-empty" }, action || actor || before ? "No entries match." : "Nothing recorded yet."));
  } else {
    main.appendChild(table(["when", "who", "action", "target", "project", "from", "details"], body.entries.map((e) => h("tr",
      { dataset: { action: e.action, actor: e.actor } },
      h("td", { class: "nowrap", title: fmtAgo(e.at) }, fmtTime(e.at)), h("td", { class: "audit-actor" }, e.actor),
      h("td", { class: "mono audit-action" }, e.action), h("td", { class: "mono wrap audit-target" }, e.target || "–"),
      h("td", null, e.project || "(server)"), h("td", { class: "mono audit-address" }, e.address || "–"),
      h("td", { class: "wrap small mono" }, details(e)))), "audit"));
  }
  const keep = new URLSearchParams();
  if (action) keep.set("action", action);
  if (actor) keep.set("actor", actor);
  const older = new URLSearchParams(keep);
  if (body.next) older.set("before", body.next);
  main.appendChild(h("div", { class: "pager", id: "audit-pager" },
    before ? h("a", { href: `/audit${keep.toString() ? `?${keep}` : ""}`, class: "btn", id: "audit-newest" }, "← Newest") : null,
    body.more ? h("a", { href: `/audit?${older}`, class: "btn", id: "audit-older" }, "Older →") : null,
    h("span", { class: "muted small" }, `${body.entries.length} entries${before ? " (older page)" : ""}`)));
  return undefined;
}
