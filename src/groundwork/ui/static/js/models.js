// Registered models: versions, aliases and their history; promote a version with a confirmation and a reason.
import { api, clear, errorBox, fmtAgo, fmtNum, fmtTime, h, shortId, statusBadge, table, toast, put } from "./util.js";

const aliasBadges = (aliases) => aliases.map((a) => h("span", { class: "badge alias", dataset: { alias: a } }, `@${a}`));

export async function renderList(main) {
  const { models } = await api("/models");
  put(main, h("div", { class: "page-head" }, h("h1", null, "Models"), h("span", { class: "meta" }, `${models.length} registered`)));
  if (!models.length) {
    main.appendChild(h("p", { class: "empty" }, "No models yet. Register one with ", h("code", null, "run.log_model(model, \"name\")"), " inside ", h("code", null, "gw.start_run()"), "."));
    return;
  }
  main.appendChild(table(["model", { label: "latest version", num: true }, "aliases", "updated", "description"], models.map((m) => h("tr", null,
    h("td", null, h("a", { href: `/models/${encodeURIComponent(m.name)}` }, m.name)),
    h("td", { class: "num" }, m.latest_version ?? "–"),
    h("td", null, Object.entries(m.aliases).map(([a, v]) => h("span", { class: "badge alias" }, `@${a} → v${v}`))),
    h("td", { title: fmtTime(m.updated_at) }, fmtAgo(m.updated_at)),
    h("td", { class: "wrap" }, m.description || "")))));
}

export async function renderModel(main, ctx) {
  const name = ctx.params[0];
  const dialog = promoteDialog();
  main.appendChild(dialog.el);
  const body = h("div");
  main.appendChild(body);

  async function draw(focusVersion) {
    const data = await api(`/models/${encodeURIComponent(name)}`);
    if (!ctx.isCurrent()) return;
    const { model, versions, aliases, history } = data;
    const metricKeys = [...new Set(versions.flatMap((v) => (v.run ? Object.keys(v.run.metrics) : [])))].sort().slice(0, 6);
    put(clear(body), 
      h("div", { class: "page-head" }, h("h1", null, model.name), h("span", { class: "meta" }, `${versions.length} version${versions.length === 1 ? "" : "s"}`),
        h("a", { href: `/lineage?ref=${encodeURIComponent(model.name)}&type=model` }, "lineage of the latest version")),
      model.description ? h("p", null, model.description) : null,
      h("h2", null, "Aliases"),
      Object.keys(aliases).length ? h("div", { class: "chips", id: "aliases" }, Object.entries(aliases).map(([a, v]) => h("span", { class: "chip", dataset: { alias: a, version: v } },
        h("strong", null, `@${a}`), ` → v${v}`, " ", h("a", { href: `/lineage?ref=${encodeURIComponent(`${model.name}@${a}`)}`, class: "small" }, "lineage"),
        " ", h("a", { href: `/monitor/${encodeURIComponent(`${model.name}@${a}`)}`, class: "small" }, "monitor"), " "))) : h("p", { class: "muted", id: "aliases" }, "No aliases yet: promote a version below."),
      h("h2", null, "Versions"),
      table([{ label: "version", num: true }, "aliases", "created", "flavor", "made by run", ...metricKeys.map((k) => ({ label: k, num: true })), ""], versions.map((v) => h("tr", { dataset: { version: v.version } },
        h("td", { class: "num" }, `v${v.version}`),
        h("td", null, aliasBadges(v.aliases)),
        h("td", null, fmtTime(v.created_at)),
        h("td", null, v.flavor, v.onnx_digest ? h("span", { class: "muted small" }, " +onnx") : null),
        h("td", null, v.run ? [h("a", { href: `/runs/${v.run.id}` }, v.run.name), " ", statusBadge(v.run.status)] : h("span", { class: "muted" }, v.run_id ? shortId(v.run_id) : "–")),
        metricKeys.map((k) => h("td", { class: "num mono" }, v.run && v.run.metrics[k] !== undefined ? fmtNum(v.run.metrics[k]) : "")),
        h("td", null, h("button", {
          type: "button", class: "small", dataset: { promote: v.version },
          onclick: () => dialog.open(model.name, v.version, Object.keys(aliases), async (alias, reason) => {
            const result = await api(`/models/${encodeURIComponent(model.name)}/aliases/${encodeURIComponent(alias)}`, null, { method: "POST", json: { version: v.version, reason } });
            toast(`@${alias} now points at v${v.version}${result.move.from_version ? ` (was v${result.move.from_version})` : ""}`);
            await draw(v.version);
          }),
        }, "Promote…"), " ", h("a", { href: `/lineage?ref=${encodeURIComponent(`${model.name}/${v.version}`)}&type=model`, class: "small" }, "lineage"))))),
      h("h2", null, "Alias history"),
      history.length ? table(["when", "alias", "from", "to", "who", "reason"], history.map((m) => h("tr", null,
        h("td", { title: fmtTime(m.changed_at) }, fmtTime(m.changed_at)), h("td", null, `@${m.alias}`),
        h("td", null, m.from_version ? `v${m.from_version}` : "–"), h("td", null, m.to_version ? `v${m.to_version}` : "removed"),
        h("td", null, m.who || ""), h("td", { class: "wrap" }, m.reason || ""))), "history") : h("p", { class: "muted" }, "No alias has moved yet."),
      exportsSection(data.exports || []));
    if (focusVersion) {
      const button = body.querySelector(`button[data-promote="${focusVersion}"]`);
      if (button) button.focus();
    }
  }
  await draw();
}

// Recorded exports (groundwork export): each was checked against the version before it was kept.
function exportsSection(exports) {
  if (!exports.length) return null;
  const agreement = (v) => {
    const a = (v && v.agreement) || {};
    if (typeof a.value !== "number") return "–";
    return a.measure === "cosine" ? `cosine ${a.value.toFixed(4)}` : `${a.measure === "label" ? "labels" : a.measure} ${(100 * a.value).toFixed(1)}%`;
  };
  const megabytes = (n) => (typeof n !== "number" ? "–" : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(1)} KB`);
  const latency = (v) => Object.entries((v && v.latency_ms) || {}).filter(([, ms]) => typeof ms === "number")
    .map(([key, ms]) => `${key.replaceAll("_", " ")} ${ms.toFixed(2)} ms`).join(" · ");
  return [h("h2", null, "Exports"), table([{ label: "id", num: true }, { label: "version", num: true }, "target", "checked in", "agreement",
    { label: "size", num: true }, "latency (one row)", "folder", "created"], exports.map((e) => h("tr", { dataset: { exportId: e.id } },
    h("td", { class: "num" }, String(e.id)), h("td", { class: "num" }, `v${e.version}`), h("td", null, `${e.target} ${e.precision}`),
    h("td", null, (e.verification.runtime || {}).name || "–"), h("td", null, agreement(e.verification)),
    h("td", { class: "num" }, megabytes((e.verification.size || {}).total_bytes)),
    h("td", { class: "wrap small" }, latency(e.verification)), h("td", { class: "wrap mono small" }, e.location || "–"),
    h("td", null, fmtTime(e.created_at)))), "exports")];
}

function promoteDialog() {
  const title = h("h2", { id: "promote-title" });
  const aliasInput = h("input", { type: "text", id: "promote-alias", list: "promote-aliases", required: true, pattern: "[A-Za-z][A-Za-z0-9_\\-]{0,63}", value: "production", class: "mono" });
  const aliasList = h("datalist", { id: "promote-aliases" });
  const reason = h("textarea", { id: "promote-reason", required: true, placeholder: "Why this version? (kept in the alias history)" });
  const error = h("div", { "aria-live": "assertive" });
  const confirm = h("button", { type: "submit", class: "primary", id: "promote-confirm" }, "Promote");
  let onConfirm = null;
  const form = h("form", { method: "dialog", novalidate: true },
    title,
    h("div", { class: "row" }, h("label", { for: "promote-alias" }, "Alias"), aliasInput, aliasList),
    h("div", { class: "row" }, h("label", { for: "promote-reason" }, "Reason"), reason),
    error,
    h("div", { class: "actions" }, h("button", { type: "button", onclick: () => el.close() }, "Cancel"), confirm));
  const el = h("dialog", { "aria-labelledby": "promote-title", id: "promote-dialog" }, form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!aliasInput.value.trim() || !reason.value.trim()) {
      clear(error).appendChild(h("p", { class: "field-error" }, "Give an alias and a reason."));
      return;
    }
    confirm.disabled = true;
    try {
      await onConfirm(aliasInput.value.trim(), reason.value.trim());
      el.close();
    } catch (err) {
      clear(error).appendChild(errorBox(err));
    } finally {
      confirm.disabled = false;
    }
  });
  return {
    el,
    open(model, version, aliases, callback) {
      onConfirm = callback;
      title.textContent = `Promote ${model} v${version}`;
      put(clear(aliasList), ...[...new Set(["production", "staging", ...aliases])].map((a) => h("option", { value: a })));
      reason.value = "";
      clear(error);
      confirm.textContent = `Promote v${version}`;
      el.showModal();
      aliasInput.focus();
      aliasInput.select();
    },
  };
}
