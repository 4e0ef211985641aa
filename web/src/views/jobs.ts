import { JobStatus, type Job } from "../../../gen/studio/v1/job_pb.js";
import { oneLine, taskPrompt } from "../../../contract/task.js";
import type { View } from "../app.js";
import { field, h, replace } from "../dom.js";
import { JobFeed, feedMessage } from "../job-feed.js";
import { formatTime, millis } from "../format.js";
import { LISTED_STATUSES, statusFromName, statusName } from "../../../contract/job-progress.js";
import { progressCell, statusBadge, waitNote } from "../widgets.js";
import { guarded } from "../guarded.js";
import { describeError } from "../errors.js";

/** How many jobs the live list keeps on screen, newest first. */
const MAX_ROWS = 200;
/** The prompt and error columns show this much; the whole text is in the cell's title and on the job page. */
const PROMPT_CHARS = 40;
const ERROR_CHARS = 48;
/** Retries sent at once when retrying a selection. */
const RETRY_CONCURRENCY = 4;

/** The table's columns; the first (no heading) holds the selection boxes. */
const COLUMNS = ["", "Job", "Model", "Status", "Prompt", "Progress", "Attempts", "Worker", "Error", "Created"];

/** Jobs RetryJob takes back: failed and cancelled ones. */
const retryable = (job: Job) => job.status === JobStatus.FAILED || job.status === JobStatus.CANCELLED;

/** A cell with a one-line cut of `text`, the whole of it as the cell's title. */
function shortText(label: string, text: string, max: number, cls?: string): HTMLTableCellElement {
  const cut = oneLine(text, max);
  return h("td", { "data-label": label, class: cls, title: cut === text ? undefined : text }, cut || "—");
}


/**
 * The live job list: one WatchJobs stream (model filtered by the server) feeds
 * the table; the status filter applies on the page so that a job leaving the
 * chosen status leaves the list too.
 */
export const jobsView: View = (app, main, route) => {
  const statusQuery = route.query.get("status") ?? "";
  const model = route.query.get("model") ?? "";
  const status = statusFromName(statusQuery);
  const jobs = new Map<string, Job>();
  const tbody = h("tbody");
  const feedLine = h("p", { class: "feed", role: "status", "aria-live": "polite" });

  const statusSel = field(
    "Status",
    h(
      "select",
      { name: "status" },
      h("option", { value: "" }, "any"),
      LISTED_STATUSES.map((s) => h("option", { value: statusName(s), selected: s === status }, statusName(s))),
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

  /** Failed and cancelled jobs ticked for Retry selected. */
  const selected = new Set<string>();
  const selectCell = (job: Job) =>
    h(
      "td",
      { class: "select" },
      retryable(job)
        ? h("input", {
            type: "checkbox",
            "aria-label": `Select job ${job.id}`,
            checked: selected.has(job.id),
            onchange: (e: Event) => {
              if ((e.target as HTMLInputElement).checked) selected.add(job.id);
              else selected.delete(job.id);
              renderSelection();
            },
          })
        : null,
    );

  const rowFor = (job: Job) =>
    h(
      "tr",
      { "data-job": job.id },
      selectCell(job),
      h("th", { scope: "row", "data-label": "Job" }, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, job.id)),
      h("td", { "data-label": "Model" }, job.model),
      h("td", { "data-label": "Status" }, statusBadge(job), waitNote(job)),
      shortText("Prompt", taskPrompt(job.task), PROMPT_CHARS, "prompt"),
      h("td", { "data-label": "Progress" }, progressCell(job)),
      h("td", { "data-label": "Attempts" }, `${job.attempts} of ${job.maxAttempts}`),
      h("td", { "data-label": "Worker" }, job.workerName || "—"),
      shortText("Error", job.error, ERROR_CHARS, job.error ? "error-text" : "muted"),
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
    // The job link (cell 1) stays, and so does the checkbox while the job stays selectable.
    const cells = [...fresh.cells];
    const keepCheckbox = retryable(had.job) === retryable(job);
    for (let c = keepCheckbox ? 2 : 0; c < cells.length; c++) if (c !== 1) had.row.cells[c]!.replaceWith(cells[c]!);
    had.job = job;
    return had.row;
  };

  const render = () => {
    renderCounts();
    for (const id of selected) if (!jobs.has(id) || !retryable(jobs.get(id)!)) selected.delete(id);
    renderSelection();
    const list = [...jobs.values()]
      .filter(visible)
      .sort((a, b) => millis(b.createTime) - millis(a.createTime) || b.id.localeCompare(a.id))
      .slice(0, MAX_ROWS);
    if (list.length === 0) {
      rows.clear();
      replace(tbody, h("tr", {}, h("td", { colspan: COLUMNS.length, class: "empty" }, "No jobs match.")));
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

  /** Jobs per status over everything the stream sent (the model filter is the server's): each a link to that status. */
  const counts = h("p", { class: "counts", "aria-label": "Job counts" });
  const renderCounts = () => {
    const n = new Map<JobStatus, number>();
    for (const job of jobs.values()) n.set(job.status, (n.get(job.status) ?? 0) + 1);
    const link = (s: JobStatus | undefined, label: string, count: number) => {
      const q = new URLSearchParams();
      if (s !== undefined) q.set("status", statusName(s));
      if (model) q.set("model", model);
      return h(
        "a",
        { href: `#/jobs${q.size ? `?${q}` : ""}`, "aria-current": s === status ? "true" : undefined, "data-count": label },
        `${label} `,
        h("strong", {}, String(count)),
      );
    };
    replace(counts, link(undefined, "all", jobs.size), LISTED_STATUSES.map((s) => [" · ", link(s, statusName(s), n.get(s) ?? 0)]));
  };

  const retryButton = h("button", { type: "button", disabled: true, onclick: () => void retrySelected() }, "Retry selected");
  const selectAll = h("input", {
    type: "checkbox",
    "aria-label": "Select every failed or cancelled job shown",
    onchange: () => {
      for (const { job } of rows.values()) if (retryable(job)) (selectAll.checked ? selected.add(job.id) : selected.delete(job.id));
      for (const box of tbody.querySelectorAll<HTMLInputElement>("td.select input")) box.checked = selectAll.checked;
      renderSelection();
    },
  });
  const renderSelection = () => {
    retryButton.disabled = selected.size === 0;
    retryButton.textContent = selected.size ? `Retry selected (${selected.size})` : "Retry selected";
    const shown = [...rows.values()].filter((r) => retryable(r.job));
    selectAll.disabled = shown.length === 0;
    selectAll.checked = shown.length > 0 && shown.every((r) => selected.has(r.job.id));
  };

  /** Retries the selection a few at a time; the rows update from the stream as each job is queued again. */
  const retrySelected = async () => {
    const ids = [...selected];
    selected.clear();
    retryButton.disabled = true;
    renderSelection();
    const failures: string[] = [];
    let done = 0;
    const next = async (): Promise<void> => {
      const id = ids.shift();
      if (id === undefined) return;
      try {
        await app.api.jobs.retryJob({ jobId: id });
        done++;
      } catch (err) {
        failures.push(`${id}: ${describeError(err)}`);
      }
      return next();
    };
    await Promise.all(Array.from({ length: Math.min(RETRY_CONCURRENCY, ids.length) }, next));
    if (failures.length === 0) app.announce(`Retried ${done} job${done === 1 ? "" : "s"}.`);
    else app.announce(`Retried ${done}; ${failures.length} refused: ${failures.join("; ")}`, "error");
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
        if (state.kind === "unauthenticated") app.needLogin(state.cause);
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
    counts,
    feedLine,
    h("div", { class: "bulk" }, h("label", { class: "select-all" }, selectAll, "All failed shown"), retryButton),
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
            COLUMNS.map((c) => (c ? h("th", { scope: "col" }, c) : h("td", { class: "select" }))),
          ),
        ),
        tbody,
      ),
    ),
  );
  render();
  return () => feed.close();
};
