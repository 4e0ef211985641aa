import type { Job, JobStatus } from "../../../gen/studio/v1/job_pb.js";
import type { View } from "../app.js";
import { field, h, replace } from "../dom.js";
import { JobFeed, feedMessage } from "../job-feed.js";
import { LISTED_STATUSES, STATUS_NAMES, formatTime, millis } from "../format.js";
import { progressCell, statusBadge } from "../widgets.js";
import { guarded } from "../guarded.js";

/** How many jobs the live list keeps on screen, newest first. */
const MAX_ROWS = 200;


/**
 * The live job list: one WatchJobs stream (model filtered by the server) feeds
 * the table; the status filter applies on the page so that a job leaving the
 * chosen status leaves the list too.
 */
export const jobsView: View = (app, main, route) => {
  const statusName = route.query.get("status") ?? "";
  const model = route.query.get("model") ?? "";
  const status = LISTED_STATUSES.find((s) => STATUS_NAMES[s] === statusName);
  const jobs = new Map<string, Job>();
  const tbody = h("tbody");
  const feedLine = h("p", { class: "feed", role: "status", "aria-live": "polite" });

  const statusSel = field(
    "Status",
    h(
      "select",
      { name: "status" },
      h("option", { value: "" }, "any"),
      LISTED_STATUSES.map((s) => h("option", { value: STATUS_NAMES[s], selected: s === status }, STATUS_NAMES[s])),
    ),
  );
  const modelSel = field("Model", h("select", { name: "model" }, h("option", { value: "" }, "any")));
  const applyFilter = () => {
    const q = new URLSearchParams();
    if (statusSel.control.value) q.set("status", statusSel.control.value);
    if (modelSel.control.value) q.set("model", modelSel.control.value);
    app.navigate(`#/jobs${q.size ? `?${q}` : ""}`);
  };
  statusSel.control.addEventListener("change", applyFilter);
  modelSel.control.addEventListener("change", applyFilter);
  void guarded(app, "Listing models", () => app.api.registry.listModels({})).then((res) => {
    const names = new Set((res?.models ?? []).map((m) => m.name));
    if (model) names.add(model);
    for (const n of [...names].sort()) modelSel.control.append(h("option", { value: n, selected: n === model }, n));
  });

  const rowFor = (job: Job) =>
    h(
      "tr",
      { "data-job": job.id },
      h("th", { scope: "row", "data-label": "Job" }, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, job.id)),
      h("td", { "data-label": "Model" }, job.model),
      h("td", { "data-label": "Status" }, statusBadge(job)),
      h("td", { "data-label": "Progress" }, progressCell(job)),
      h("td", { "data-label": "Attempts" }, `${job.attempts} of ${job.maxAttempts}`),
      h("td", { "data-label": "Worker" }, job.workerName || "—"),
      h("td", { "data-label": "Created" }, formatTime(job.createTime)),
    );

  const visible = (job: Job) => status === undefined || job.status === (status as JobStatus);

  /** Rows by job id with the job they show; a changed job's cells are swapped in place so focus on its link survives. */
  const rows = new Map<string, { job: Job; row: HTMLTableRowElement }>();
  const rowOf = (job: Job) => {
    const had = rows.get(job.id);
    if (had?.job === job) return had.row;
    const fresh = rowFor(job);
    if (!had) {
      rows.set(job.id, { job, row: fresh });
      return fresh;
    }
    const cells = [...fresh.cells];
    for (let c = 1; c < cells.length; c++) had.row.cells[c]!.replaceWith(cells[c]!);
    had.job = job;
    return had.row;
  };

  const render = () => {
    const list = [...jobs.values()]
      .filter(visible)
      .sort((a, b) => millis(b.createTime) - millis(a.createTime) || b.id.localeCompare(a.id))
      .slice(0, MAX_ROWS);
    if (list.length === 0) {
      rows.clear();
      replace(tbody, h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No jobs match.")));
      return;
    }
    const wanted = list.map(rowOf);
    const keep = new Set(wanted);
    for (const [id, r] of rows) if (!keep.has(r.row)) rows.delete(id);
    for (const child of [...tbody.children]) if (!keep.has(child as HTMLTableRowElement)) child.remove();
    wanted.forEach((row, i) => {
      if (tbody.children[i] !== row) tbody.insertBefore(row, tbody.children[i] ?? null);
    });
  };

  let pending = false;
  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      render();
    });
  };

  const feed = new JobFeed(
    app.api,
    { model: model || undefined },
    {
      job(job) {
        jobs.set(job.id, job);
        schedule();
      },
      state(state) {
        const m = feedMessage(state);
        feedLine.textContent = m.text;
        feedLine.dataset.kind = m.error ? "error" : "info";
        if (state.kind === "unauthenticated") app.needLogin(`Watching jobs: ${state.error}`);
      },
    },
  );

  replace(
    main,
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, "Jobs"),
      h(
        "div",
        { class: "toolbar" },
        h(
          "a",
          { class: "button primary", href: `#/jobs/new${model ? `?model=${encodeURIComponent(model)}` : ""}` },
          "New job",
        ),
      ),
    ),
    h(
      "form",
      { class: "filters", "aria-label": "Filter jobs", onsubmit: (e: Event) => e.preventDefault() },
      statusSel.row,
      modelSel.row,
    ),
    feedLine,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "responsive jobs" },
        h("caption", { class: "visually-hidden" }, "Jobs, newest first, updated live"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Job", "Model", "Status", "Progress", "Attempts", "Worker", "Created"].map((c) =>
              h("th", { scope: "col" }, c),
            ),
          ),
        ),
        tbody,
      ),
    ),
  );
  render();
  return () => feed.close();
};
