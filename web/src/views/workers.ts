import type { WorkerInfo } from "../../../gen/studio/v1/worker_service_pb.js";
import { engineName } from "../../../contract/names.js";
import type { View } from "../app.js";
import { h, replace } from "../dom.js";
import { formatAge, formatTime } from "../format.js";
import { guarded } from "../guarded.js";

/** How often the open Workers page asks again; ListWorkers has no stream, and is cheap. */
const REFRESH_MS = 5000;

/**
 * Connected workers: engines, slots in use, current jobs, cached models (digests
 * matched to registry files by sha256), last heartbeat and version.
 */
export const workersView: View = (app, main) => {
  const tbody = h("tbody");
  const updated = h("p", { class: "feed", role: "status", "aria-live": "polite" });
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;

  const load = async () => {
    clearTimeout(timer);
    const [workers, models] = await Promise.all([
      guarded(app, "Listing workers", () => app.api.workers.listWorkers({})),
      guarded(app, "Listing models", () => app.api.registry.listModels({})),
    ]);
    if (closed) return;
    const byDigest = new Map<string, string>();
    for (const m of models?.models ?? [])
      for (const f of m.source?.files ?? []) if (f.sha256) byDigest.set(f.sha256, `${m.name}/${f.filename}`);
    if (workers) {
      renderRows(workers.workers, byDigest);
      updated.textContent = `${workers.workers.length} worker${workers.workers.length === 1 ? "" : "s"} connected, as of ${new Date().toLocaleTimeString()}.`;
    }
    timer = setTimeout(load, REFRESH_MS);
  };

  const renderRows = (workers: WorkerInfo[], byDigest: Map<string, string>) => {
    if (workers.length === 0)
      return replace(tbody, h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No workers connected.")));
    replace(
      tbody,
      workers.map((w) =>
        h(
          "tr",
          { "data-worker": w.name },
          h(
            "th",
            { scope: "row", "data-label": "Worker" },
            w.name,
            w.draining ? h("span", { class: "badge off" }, "draining") : null,
            Object.keys(w.labels).length
              ? h(
                  "div",
                  { class: "muted" },
                  Object.entries(w.labels)
                    .map(([k, v]) => `${k}=${v}`)
                    .join(", "),
                )
              : null,
          ),
          h("td", { "data-label": "Version" }, w.version || "—"),
          h(
            "td",
            { "data-label": "Engines" },
            w.engines.map((e) => engineName(e) ?? `unknown (${e})`).join(", ") || "—",
          ),
          h("td", { "data-label": "Slots" }, `${w.slotsInUse} of ${Math.max(1, w.slots)} in use`),
          h(
            "td",
            { "data-label": "Jobs" },
            w.jobIds.length
              ? h(
                  "ul",
                  { class: "plain" },
                  w.jobIds.map((id) => h("li", {}, h("a", { href: `#/jobs/${encodeURIComponent(id)}` }, id))),
                )
              : "idle",
          ),
          h(
            "td",
            { "data-label": "Cached" },
            w.cachedSha256.length
              ? h(
                  "ul",
                  { class: "plain" },
                  w.cachedSha256.map((d) =>
                    h("li", {}, byDigest.get(d) ?? h("code", { title: d }, `${d.slice(0, 12)}…`)),
                  ),
                )
              : "none",
          ),
          h(
            "td",
            { "data-label": "Heartbeat" },
            h("time", { title: formatTime(w.lastHeartbeatTime) }, formatAge(w.lastHeartbeatTime)),
            h("div", { class: "muted" }, `connected ${formatTime(w.connectTime)}`),
          ),
        ),
      ),
    );
  };

  replace(
    main,
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, "Workers"),
      h("div", { class: "toolbar" }, h("button", { type: "button", onclick: () => void load() }, "Refresh workers")),
    ),
    updated,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "responsive" },
        h("caption", { class: "visually-hidden" }, "Connected workers"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Worker", "Version", "Engines", "Slots", "Jobs", "Cached", "Heartbeat"].map((c) =>
              h("th", { scope: "col" }, c),
            ),
          ),
        ),
        tbody,
      ),
    ),
  );
  void load();
  return () => {
    closed = true;
    clearTimeout(timer);
  };
};
