// The vendored libraries, loaded on first use only (the runs table needs neither).
const pending = new Map();

export function script(src) {
  if (!pending.has(src)) {
    pending.set(src, new Promise((resolve, reject) => {
      const el = document.createElement("script");
      el.src = src;
      el.async = true;
      el.onload = () => resolve();
      el.onerror = () => { pending.delete(src); reject(new Error(`could not load ${src}`)); };
      document.head.appendChild(el);
    }));
  }
  return pending.get(src);
}

export const ECHARTS = "/static/vendor/echarts-5.6.0.min.js";
export const CYTOSCAPE = "/static/vendor/cytoscape-3.34.4.min.js";
export const CYTOSCAPE_DAGRE = "/static/vendor/cytoscape-dagre-4.0.1.min.js";

export async function echarts() {
  await script(ECHARTS);
  return window.echarts;
}

export async function cytoscape() {
  await script(CYTOSCAPE);
  await script(CYTOSCAPE_DAGRE);  // registers the "dagre" layout on window.cytoscape
  return window.cytoscape;
}
