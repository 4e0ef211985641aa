import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { JobStatus, type Job } from "../../../gen/studio/v1/job_pb.js";
import { engineName, roleName } from "../../../contract/names.js";
import { vramText } from "../../../contract/gpus.js";
import { cliDefaultsToJson, modelSourceToJsonValue } from "../../../contract/model-source.js";
import type { View } from "../app.js";
import { field, h, replace } from "../dom.js";
import { JobFeed, feedMessage } from "../job-feed.js";
import { formatBytes } from "../../../contract/byte-size.js";
import { isActive, phaseName, statusName } from "../../../contract/job-progress.js";
import { progressCell, statusBadge, waitNote } from "../widgets.js";
import { renderOutputs } from "./job-outputs.js";
import { guarded } from "../guarded.js";
import { applyDelta, utf8Length, type TextSoFar } from "../../../contract/text-delta.js";

interface TimelineEntry {
  at: Date;
  what: string;
}

/**
 * One job, live: its own WatchJobs stream keeps status, progress and outputs
 * current. The timeline holds the server's times plus every change this page saw while open.
 */
export const jobView: View = (app, main, route) => {
  const id = route.path[1]!;
  let job: Job | undefined;
  const seen: TimelineEntry[] = [];
  const outputsBox = h("section", { class: "outputs", "aria-labelledby": "outputs-title" });
  let outputsFor = "";
  const objectUrls: string[] = [];
  const body = h("div");
  const feedLine = h("p", { class: "feed", role: "status", "aria-live": "polite" });
  // A text job's output as the engine streams it, until the job's outputs replace it. Pieces are
  // appended as text nodes, so a long answer costs the page what each piece adds, not the whole.
  let streamed: TextSoFar | undefined;
  const streamTitle = h("h2", { id: "streamed-title" });
  const streamReasoning = h("pre", { class: "text-output reasoning", "data-streamed-reasoning": "" });
  const reasoningBox = h("details", { hidden: true }, h("summary", {}, "Reasoning"), streamReasoning);
  const streamText = h("pre", { class: "text-output", "data-streamed-text": "" });
  const streamBox = h("section", { class: "streamed", "aria-labelledby": "streamed-title", hidden: true }, streamTitle, reasoningBox, streamText);
  const renderStreamed = (piece?: { text: string; reasoning: string }) => {
    const show = streamed !== undefined && job !== undefined && job.status !== JobStatus.SUCCEEDED;
    streamBox.hidden = !show;
    if (!show) return;
    const s = streamed!;
    streamTitle.textContent = isActive(job!.status) ? `Output so far (${s.tokens} tokens)` : `Output streamed before the job stopped (${s.tokens} tokens)`;
    reasoningBox.hidden = s.reasoning === "";
    if (piece) {
      if (piece.reasoning) streamReasoning.append(piece.reasoning);
      if (piece.text) streamText.append(piece.text);
    } else {
      streamReasoning.textContent = s.reasoning;
      streamText.textContent = s.text;
    }
  };
  const adoptStreamed = (j: Job) => {
    const t = j.streamedText;
    if (!t || (streamed && (streamed.attempt > t.attempt || (streamed.attempt === t.attempt && streamed.textBytes >= utf8Length(t.text))))) return;
    streamed = { attempt: t.attempt, text: t.text, reasoning: t.reasoning, textBytes: utf8Length(t.text), reasoningBytes: utf8Length(t.reasoning), tokens: t.tokens };
  };
  /** A piece was lost (or the page joined late): the text so far as the studio holds it. */
  let rereading = false;
  const reread = () => {
    if (rereading) return;
    rereading = true;
    void app.api.jobs.getJob({ jobId: id }).then(
      (res) => {
        rereading = false;
        if (res.job) adoptStreamed(res.job);
        renderStreamed();
      },
      () => (rereading = false),
    );
  };
  const headline = h("p", { class: "headline", "aria-live": "polite" });

  const act = async (what: string, call: () => Promise<{ job?: Job }>, go = false) => {
    const res = await guarded(app, what, call);
    if (!res?.job) return;
    app.announce(`${what}: job ${res.job.id} is ${statusName(res.job.status)}.`);
    if (go && res.job.id !== id) app.navigate(`#/jobs/${encodeURIComponent(res.job.id)}`);
    else update(res.job);
  };

  const cancel = async () => {
    if (
      !(await app.confirm(
        `Cancel job ${id}?`,
        "A running job is stopped on its worker; Retry queues it again later.",
        "Cancel job",
      ))
    )
      return;
    await act("Cancelling", () => app.api.jobs.cancelJob({ jobId: id }));
  };

  const promoteBox = () => {
    const sel = field("Promote to model", h("select", { name: "promoteModel" }));
    void guarded(app, "Listing models", () => app.api.registry.listModels({ enabledOnly: true })).then((res) => {
      replace(
        sel.control,
        (res?.models ?? []).filter((m) => m.name !== job?.model).map((m) => h("option", { value: m.name }, m.name)),
      );
    });
    return h(
      "form",
      {
        class: "inline-form",
        "aria-label": "Promote",
        onsubmit: (e: Event) => {
          e.preventDefault();
          if (sel.control.value)
            void act(
              `Promoting to ${sel.control.value}`,
              () => app.api.jobs.promoteJob({ jobId: id, model: sel.control.value }),
              true,
            );
        },
      },
      sel.row,
      h("button", { type: "submit" }, "Promote"),
    );
  };
  const promote = promoteBox();

  const update = (next: Job) => {
    const prev = job;
    job = next;
    const phase = next.progress?.phase ? phaseName(next.progress.phase) : "";
    if (prev && prev.status !== next.status)
      seen.push({
        at: new Date(),
        what: `seen ${statusName(next.status)}${next.workerName ? ` on ${next.workerName}` : ""}`,
      });
    else if (prev && phase && (prev.progress?.phase ?? 0) !== next.progress?.phase)
      seen.push({ at: new Date(), what: `phase ${phase}` });
    headline.textContent = `Status: ${statusName(next.status)}${phase && phase !== "running" && next.status === JobStatus.RUNNING ? ` (${phase})` : ""}.`;
    adoptStreamed(next);
    render();
  };

  const render = () => {
    const j = job!;
    const t = j.task?.kind;
    const actions = h(
      "div",
      { class: "actions" },
      isActive(j.status) ? h("button", { type: "button", class: "danger", onclick: cancel }, "Cancel job") : null,
      j.status === JobStatus.FAILED || j.status === JobStatus.CANCELLED
        ? h(
            "button",
            {
              type: "button",
              class: "primary",
              onclick: () => act("Retrying", () => app.api.jobs.retryJob({ jobId: id })),
            },
            "Retry job",
          )
        : null,
    );
    replace(
      body,
      h("div", { class: "job-head" }, statusBadge(j), progressCell(j), actions),
      waitNote(j),
      streamBox,
      outputsBox,
      h(
        "div",
        { class: "columns" },
        h(
          "section",
          { "aria-labelledby": "task-title" },
          h("h2", { id: "task-title" }, "Task"),
          h(
            "dl",
            {},
            dl("Model", h("a", { href: `#/models/${encodeURIComponent(j.model)}` }, j.model)),
            j.promotedFrom
              ? dl("Promoted from", h("a", { href: `#/jobs/${encodeURIComponent(j.promotedFrom)}` }, j.promotedFrom))
              : null,
            t?.case === "image"
              ? [
                  dl("Kind", "image"),
                  dl("Prompt", t.value.prompt),
                  t.value.negativePrompt ? dl("Negative prompt", t.value.negativePrompt) : null,
                  dl("Seed", t.value.seed === undefined ? "picked by the studio" : String(t.value.seed)),
                  dl("Batch count", String(Math.max(1, t.value.batchCount))),
                  dl("Overrides", JSON.stringify(cliDefaultsToJson(t.value.overrides))),
                ]
              : t?.case === "text"
                ? [
                    dl("Kind", "text"),
                    t.value.prompt
                      ? dl("Prompt", t.value.prompt)
                      : dl("Messages", t.value.messages.map((m) => `${m.role}: ${m.content}`).join("\n")),
                    t.value.maxTokens !== undefined ? dl("Max tokens", String(t.value.maxTokens)) : null,
                  ]
                : dl("Kind", "none"),
            dl("Priority", String(j.priority)),
            dl("Attempts", `${j.attempts} of ${j.maxAttempts}`),
            dl("Worker", j.workerName || "—"),
            j.vram ? dl("GPU memory", vramText(j.vram)) : null,
            j.idempotencyKey ? dl("Idempotency key", j.idempotencyKey) : null,
          ),
          j.error ? h("div", { class: "error-box", role: "alert" }, h("h3", {}, "Error"), h("pre", {}, j.error)) : null,
        ),
        h(
          "section",
          { "aria-labelledby": "source-title" },
          h("h2", { id: "source-title" }, "Model source"),
          j.modelSource
            ? [
                h(
                  "p",
                  {},
                  `${engineName(j.modelSource.engine) ?? "unknown engine"}, ${j.modelSource.files.length} file${j.modelSource.files.length === 1 ? "" : "s"}`,
                ),
                j.modelSource.files.length
                  ? h(
                      "ul",
                      { class: "plain" },
                      j.modelSource.files.map((f) =>
                        h(
                          "li",
                          {},
                          h("code", {}, f.filename),
                          h("div", { class: "muted" }, `${roleName(f.role) ?? "?"} · ${formatBytes(f.approxBytes, "—")}`),
                        ),
                      ),
                    )
                  : null,
                h(
                  "details",
                  {},
                  h("summary", {}, "Source JSON"),
                  h("pre", { class: "code" }, JSON.stringify(modelSourceToJsonValue(j.modelSource), null, 2)),
                ),
              ]
            : h("p", { class: "muted" }, "This job carries no resolved source."),
          h("h2", {}, "Timeline"),
          h(
            "ol",
            { class: "timeline" },
            timeline(j, seen).map((e) => h("li", {}, h("time", {}, e.at.toLocaleString()), ` ${e.what}`)),
          ),
          h("h2", {}, "Promote"),
          promote,
        ),
      ),
    );
    renderStreamed();
    if (j.status === JobStatus.SUCCEEDED && outputsFor !== `${j.id}:${j.outputs.length}`) {
      outputsFor = `${j.id}:${j.outputs.length}`;
      renderOutputs(app, j, outputsBox, objectUrls);
    } else if (j.status !== JobStatus.SUCCEEDED && outputsFor !== "") {
      outputsFor = "";
      replace(outputsBox);
    }
  };

  const feed = new JobFeed(
    app.api,
    { jobIds: [id], includeText: true },
    {
      job: (j) => j.id === id && update(j),
      text(delta) {
        if (delta.jobId !== id) return;
        const before = streamed;
        const r = applyDelta(streamed, delta);
        if (r.result === "gap") return reread();
        if (r.result !== "applied") return;
        streamed = r.held;
        // The page shows `before` whenever the box is visible: a continuation is appended, anything else redrawn.
        renderStreamed(before !== undefined && before.attempt === delta.attempt && !streamBox.hidden ? delta : undefined);
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
    h("div", { class: "page-head" }, h("h1", {}, `Job ${id}`), h("a", { href: "#/jobs" }, "Back to jobs")),
    headline,
    feedLine,
    body,
  );
  void guarded(app, `Loading job ${id}`, () => app.api.jobs.getJob({ jobId: id })).then((res) => {
    if (res?.job && !job) update(res.job);
    if (!res) replace(body, h("p", { class: "error-text" }, `Job ${id} could not be loaded; see the status line.`));
  });
  return () => {
    feed.close();
    for (const u of objectUrls) URL.revokeObjectURL(u);
  };
};

/** The server's times for a job and the changes this page saw, oldest first. */
function timeline(j: Job, seen: TimelineEntry[]): TimelineEntry[] {
  const at = (ts: Timestamp | undefined) => (ts && ts.seconds !== 0n ? timestampDate(ts) : undefined);
  const entries: Array<TimelineEntry | undefined> = [
    at(j.createTime) && { at: at(j.createTime)!, what: "created" },
    ...seen,
    at(j.progress?.updateTime) && {
      at: at(j.progress?.updateTime)!,
      what: `last progress${j.progress?.message ? `: ${j.progress.message}` : ""}`,
    },
    isActive(j.status) && at(j.leaseExpireTime) ? { at: at(j.leaseExpireTime)!, what: "lease expires" } : undefined,
    at(j.finishTime) && { at: at(j.finishTime)!, what: `finished ${statusName(j.status)}` },
  ];
  return entries.filter((e): e is TimelineEntry => !!e).sort((a, b) => a.at.getTime() - b.at.getTime());
}

function dl(term: string, value: string | Node) {
  return [h("dt", {}, term), h("dd", {}, value)];
}
