// Artifacts: a page per digest (who used it, its files) and the preview panel (text, image, table).
import { api, clear, copyButton, errorBox, fmtBytes, fmtTime, h, shortId, table, put } from "./util.js";

const raw = (digest, path, download) => {
  const url = new URL(`/api/v1/artifacts/${digest}/raw`, location.origin);
  if (path) url.searchParams.set("path", path);
  if (download) url.searchParams.set("download", "true");
  return url.pathname + url.search;
};

/** The preview of one file (``path`` inside a directory artifact), or a directory's file list. */
export function artifactPanel(digest, name, path) {
  const box = h("div", { class: "card", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  (async () => {
    if (!path) {
      const { artifact } = await api(`/artifacts/${digest}`);
      if (artifact.is_dir) {
        put(clear(box), h("h3", null, name || shortId(digest), " ", h("span", { class: "muted small" }, `${artifact.file_count} files, ${fmtBytes(artifact.size)}`)),
          fileList(digest, artifact, box));
        return;
      }
    }
    const { preview } = await api(`/artifacts/${digest}/preview`, { path });
    put(clear(box), 
      h("div", { class: "toolbar" }, h("strong", { class: "mono" }, path || name || preview.name), h("span", { class: "muted small" }, fmtBytes(preview.size)),
        h("span", { class: "spacer" }), h("a", { class: "btn small", href: raw(digest, path, true), download: (path || preview.name).split("/").pop() }, "Download")),
      previewBody(digest, path, preview));
  })().catch((err) => clear(box).appendChild(errorBox(err)));
  return box;
}

function fileList(digest, artifact, box) {
  if (!artifact.files || !artifact.files.length) return h("p", { class: "muted" }, "The files are not in this artifact store.");
  return table(["path", { label: "size", num: true }, ""], artifact.files.slice(0, 1000).map((f) => h("tr", null,
    h("td", { class: "mono wrap" }, f.path), h("td", { class: "num" }, fmtBytes(f.size)),
    h("td", null,
      h("button", { type: "button", class: "small", onclick: () => { const panel = artifactPanel(digest, f.path, f.path); box.after(panel); panel.scrollIntoView({ block: "nearest" }); } }, "Preview"), " ",
      h("a", { class: "btn small", href: raw(digest, f.path, true), download: f.path.split("/").pop() }, "Download")))));
}

function previewBody(digest, path, preview) {
  if (preview.type === "image") return h("img", { src: raw(digest, path), alt: `Image ${preview.name}` });
  if (preview.type === "table") {
    return h("div", null, table(preview.columns, preview.rows.map((r) => h("tr", null, r.map((c) => h("td", { class: "mono" }, c))))),
      preview.truncated ? h("p", { class: "muted small" }, `First ${preview.rows.length} rows.`) : null);
  }
  if (preview.type === "text") {
    let text = preview.text;
    if (preview.language === "json" && !preview.truncated) {
      try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* show as is */ }
    }
    return h("div", null, h("pre", { class: "code", tabindex: "0" }, text), preview.truncated ? h("p", { class: "muted small" }, "Truncated: download for the whole file.") : null);
  }
  return h("p", { class: "muted" }, `Binary file${preview.reason ? ` (${preview.reason})` : ""}: download it to look inside.`);
}

export async function render(main, ctx) {
  const { artifact } = await api(`/artifacts/${encodeURIComponent(ctx.params[0])}`);
  const name = artifact.names[0] || shortId(artifact.digest);
  put(main, 
    h("div", { class: "page-head" }, h("h1", null, name.split("/").pop()), artifact.kind ? h("span", { class: "badge neutral" }, artifact.kind) : null,
      h("span", { class: "meta" }, `${fmtBytes(artifact.size)}${artifact.is_dir ? `, ${artifact.file_count} files` : ""}`)),
    h("p", { class: "muted mono" }, artifact.digest, copyButton(artifact.digest, "digest"), " · ", h("a", { href: `/lineage?ref=${artifact.digest}&type=artifact` }, "lineage graph")),
    h("h2", null, "Used by"),
    artifact.users.length ? table(["run", "as", "name", "when"], artifact.users.map((u) => h("tr", null,
      h("td", { class: "mono" }, h("a", { href: `/runs/${u.run_id}` }, shortId(u.run_id))), h("td", null, u.direction), h("td", { class: "mono wrap" }, u.name),
      h("td", null, fmtTime(u.created_at))))) : h("p", { class: "muted" }, "No run links this artifact."),
    h("h2", null, artifact.is_dir ? "Files" : "Preview"),
    artifact.stored ? artifactPanel(artifact.digest, name) : h("p", { class: "muted" }, "The bytes are not in this artifact store (only its digest was recorded)."));
}
