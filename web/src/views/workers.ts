import type { WorkerInfo } from "../../../gen/studio/v1/worker_service_pb.js";
import { engineName } from "../../../contract/names.js";
import { formatBytes } from "../../../contract/byte-size.js";
import type { View } from "../app.js";
import { h, replace, type Child } from "../dom.js";
import { formatAge, formatTime } from "../format.js";
import { guarded } from "../guarded.js";
import { feedMessage, keepStreaming } from "../live-stream.js";

/** What a column's cells are drawn from: the worker, and the registry's file names by sha256. */
interface WorkerRowContext {
  byDigest: Map<string, string>;
}

/**
 * The Workers table, one entry per column: a heading and how to draw a worker's cell. A new fact
 * about workers (a GPU inventory, say) is one more entry here.
 */
const COLUMNS: Array<{ header: string; cell(w: WorkerInfo, c: WorkerRowContext): Child }> = [
  { header: "Version", cell: (w) => w.version || "—" },
  { header: "Engines", cell: (w) => w.engines.map((e) => engineName(e) ?? `unknown (${e})`).join(", ") || "—" },
  { header: "Slots", cell: (w) => `${w.slotsInUse} of ${Math.max(1, w.slots)} in use` },
  {
    header: "GPUs",
    cell: (w) =>
      w.gpus.length
        ? h(
            "ul",
            { class: "plain gpus" },
            w.gpus.map((g) => {
              const total = Number(g.totalMemoryBytes);
              const free = Number(g.freeMemoryBytes);
              const held = Number(g.workerMemoryBytes);
              return h(
                "li",
                { "data-gpu": String(g.index), title: g.uuid || undefined },
                h("strong", {}, `${g.index} · ${g.name}`),
                h("meter", { min: "0", max: String(total), value: String(total - free), "aria-label": `GPU ${g.index} memory in use` }),
                h(
                  "div",
                  { class: "muted" },
                  `${formatBytes(free)} free of ${formatBytes(total)}${held > 0 ? ` · ${formatBytes(held)} held by its engines` : ""} · ${g.slotsInUse} of ${g.slots} slot${g.slots === 1 ? "" : "s"} in use`,
                ),
              );
            }),
          )
        : h("span", { class: "muted" }, "CPU only"),
  },
  {
    header: "Jobs",
    cell: (w) =>
      w.jobIds.length
        ? h("ul", { class: "plain" }, w.jobIds.map((id) => h("li", {}, h("a", { href: `#/jobs/${encodeURIComponent(id)}` }, id))))
        : "idle",
  },
  {
    header: "Cached",
    cell: (w, c) =>
      w.cachedSha256.length
        ? h(
            "ul",
            { class: "plain" },
            w.cachedSha256.map((d) => h("li", {}, c.byDigest.get(d) ?? h("code", { title: d }, `${d.slice(0, 12)}…`))),
          )
        : "none",
  },
  {
    header: "Heartbeat",
    cell: (w) => [
      h("time", { title: formatTime(w.lastHeartbeatTime), "data-heartbeat": "" }, formatAge(w.lastHeartbeatTime)),
      h("div", { class: "muted" }, `connected ${formatTime(w.connectTime)}`),
    ],
  },
];

/** How often the heartbeat ages are redrawn (the stream sends the times; the ages move on their own). */
const AGE_TICK_MS = 1000;

/**
 * Connected workers, live: one WatchWorkers stream (snapshot, then the workers that changed or
 * left), with the same discipline as the Jobs list (reconnect with backoff, a fresh snapshot each
 * time, the state in the status line). Cached digests are matched to registry files by sha256.
 */
export const workersView: View = (app, main) => {
  const tbody = h("tbody");
  const feedLine = h("p", { class: "feed", role: "status", "aria-live": "polite" });
  const summary = h("p", { class: "counts" });
  const workers = new Map<string, WorkerInfo>();
  const context: WorkerRowContext = { byDigest: new Map() };
  const abort = new AbortController();

  void guarded(app, "Listing models", () => app.api.registry.listModels({})).then((res) => {
    for (const m of res?.models ?? []) for (const f of m.source?.files ?? []) if (f.sha256) context.byDigest.set(f.sha256, `${m.name}/${f.filename}`);
    render();
  });

  const rowFor = (w: WorkerInfo) =>
    h(
      "tr",
      { "data-worker": w.name, "data-worker-id": w.workerId },
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
      COLUMNS.map((col) => h("td", { "data-label": col.header }, col.cell(w, context))),
    );

  const render = () => {
    const list = [...workers.values()].sort((a, b) => a.name.localeCompare(b.name) || a.workerId.localeCompare(b.workerId));
    const slots = list.reduce((n, w) => n + Math.max(1, w.slots), 0);
    const busy = list.reduce((n, w) => n + w.slotsInUse, 0);
    summary.textContent = `${list.length} worker${list.length === 1 ? "" : "s"} connected, ${busy} of ${slots} slots in use.`;
    if (list.length === 0)
      return replace(tbody, h("tr", {}, h("td", { colspan: COLUMNS.length + 1, class: "empty" }, "No workers connected.")));
    replace(tbody, list.map(rowFor));
  };

  void keepStreaming(
    (signal) => app.api.workers.watchWorkers({}, { signal }),
    {
      message(msg) {
        if (msg.snapshot) workers.clear();
        for (const w of msg.workers) workers.set(w.workerId, w);
        for (const id of msg.removedWorkerIds) workers.delete(id);
        render();
      },
      state(state) {
        const m = feedMessage(state, "worker stream");
        feedLine.textContent = m.text;
        feedLine.dataset.kind = m.error ? "error" : "info";
        if (state.kind === "unauthenticated") app.needLogin(state.cause);
      },
    },
    abort.signal,
  );
  const ages = setInterval(() => {
    for (const row of tbody.querySelectorAll<HTMLTableRowElement>("tr[data-worker-id]")) {
      const w = workers.get(row.dataset.workerId!);
      const time = row.querySelector("time[data-heartbeat]");
      if (w && time) time.textContent = formatAge(w.lastHeartbeatTime);
    }
  }, AGE_TICK_MS);

  replace(
    main,
    h("div", { class: "page-head" }, h("h1", {}, "Workers")),
    summary,
    feedLine,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "responsive" },
        h("caption", { class: "visually-hidden" }, "Connected workers, updated live"),
        h("thead", {}, h("tr", {}, ["Worker", ...COLUMNS.map((c) => c.header)].map((c) => h("th", { scope: "col" }, c)))),
        tbody,
      ),
    ),
  );
  render();
  return () => {
    abort.abort();
    clearInterval(ages);
  };
};
