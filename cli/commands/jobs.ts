import type { Command } from "commander";
import { createHash } from "node:crypto";
import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { engineName, oneLine, outputFileName, taskPrompt, vramText } from "../../contract/index.js";
import { JobSchema, JobStatus, WaitReason, type Job } from "../../gen/studio/v1/job_pb.js";
import { JobService, ListJobsResponseSchema } from "../../gen/studio/v1/job_service_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { studioClient, type GlobalOptions } from "../connection.js";
import { CliError, EXIT } from "../exit-codes.js";
import { formatTime, printJson, printValue, renderTable, type Output } from "../output.js";
import { addTaskOptions, buildTask, type TaskFlags } from "../task-options.js";
import { WatchView } from "../watch-view.js";
import { LISTED_STATUSES, isFinal, statusFromName, statusName } from "../../contract/job-progress.js";
import type { Runner } from "./runner.js";

/** `jobs list`'s prompt and error columns are cut to these many characters; `jobs get` shows them whole. */
const LIST_PROMPT_CHARS = 40;
const LIST_ERROR_CHARS = 60;

const STATUS_NAMES = LISTED_STATUSES.map(statusName);

function parseStatus(name: string): JobStatus {
  const status = statusFromName(name);
  if (status === undefined) throw new CliError(`--status: ${JSON.stringify(name)} is not one of ${STATUS_NAMES.join(", ")}`, EXIT.usage);
  return status;
}

/** A queued job's wait in a few words for the STATUS column (`jobs get` and watches give the sentence). */
function waitTag(job: Job): string {
  const w = job.waiting;
  if (!w) return "";
  const line = w.queuePosition > 0 ? ` #${w.queuePosition}` : "";
  switch (w.reason) {
    case WaitReason.NO_CAPABLE_WORKER:
      return ` (no ${w.engine || "capable"} worker)`;
    case WaitReason.WORKERS_BUSY:
      return ` (workers busy${line})`;
    case WaitReason.MODEL_DISABLED:
      return " (model disabled)";
    case WaitReason.GPU_MEMORY:
      return ` (GPU memory${line})`;
    default:
      return line ? ` (${line.trim()})` : "";
  }
}

function printJob(o: Output, g: GlobalOptions, job: Job) {
  if (g.json) return printJson(o, JobSchema, job);
  const p = job.progress;
  o.out(
    [
      `id:        ${job.id}`,
      `model:     ${job.model}`,
      `prompt:    ${oneLine(taskPrompt(job.task), 2000) || "-"}`,
      `status:    ${statusName(job.status)}${job.error ? ` (${job.error})` : ""}`,
      ...(job.waiting ? [`waiting:   ${job.waiting.message}`] : []),
      `priority:  ${job.priority}`,
      `attempts:  ${job.attempts}/${job.maxAttempts}`,
      `worker:    ${job.workerName || "-"}`,
      `gpu mem:   ${vramText(job.vram)}`,
      `created:   ${formatTime(job.createTime)}`,
      `finished:  ${formatTime(job.finishTime)}`,
      `progress:  ${p ? `${p.message || "-"} step ${p.step}/${p.steps}` : "-"}`,
      `outputs:   ${job.outputs.map((x) => `#${x.index} ${x.mimeType} ${x.sizeBytes} bytes`).join(", ") || "-"}`,
    ].join("\n") + "\n",
  );
}

/** Most hint lines printed after a watch: past that, --output says it better. */
const MAX_SAVE_HINTS = 8;

/**
 * Follows WatchJobs; with ids, returns when all of them are final (1 if any did not succeed). With
 * `outputDir`, each job's outputs are saved there as it succeeds; without, the commands that save
 * them are printed (stderr) once the watched jobs are done.
 */
async function watch(g: GlobalOptions, o: Output, ids: string[], filter: { statuses: JobStatus[]; model: string }, outputDir?: string) {
  const view = new WatchView(o, { json: g.json === true });
  const open = new Set(ids);
  const failed = new Set<string>();
  const succeeded = new Map<string, Job>();
  if (outputDir !== undefined) mkdirSync(outputDir, { recursive: true });
  for await (const res of studioClient(JobService, g).watchJobs({ jobIds: ids, includeSnapshot: true, ...filter })) {
    const job = res.job;
    if (!job) continue;
    view.update(job);
    if (isFinal(job.status)) {
      open.delete(job.id);
      if (job.status !== JobStatus.SUCCEEDED) failed.add(job.id);
      else {
        failed.delete(job.id);
        if (outputDir !== undefined && !succeeded.has(job.id)) await saveOutputs(g, o, job, outputDir);
        succeeded.set(job.id, job);
      }
      if (ids.length > 0 && open.size === 0) break;
    }
  }
  if (outputDir === undefined) printSaveHints(o, [...succeeded.values()]);
  return failed.size > 0 ? EXIT.failed : EXIT.ok;
}

/** Downloads every output of a succeeded job into dir, checked like `jobs output`, and says where each went. */
async function saveOutputs(g: GlobalOptions, o: Output, job: Job, dir: string) {
  for (const out of job.outputs) {
    const file = join(dir, outputFileName(job.id, out.index, out.mimeType));
    const saved = await download(g, job.id, out.index, file);
    o.err(`saved ${file} (${saved.sizeBytes} bytes, ${saved.mimeType})\n`);
  }
}

/** The commands that save what the watched jobs produced: a watch that ends should not leave the operator guessing. */
function printSaveHints(o: Output, jobs: Job[]) {
  const lines = jobs.flatMap((job) =>
    job.outputs.map((out) => `  studio jobs output ${job.id} --index ${out.index} -o ${outputFileName(job.id, out.index, out.mimeType)}`),
  );
  if (lines.length === 0) return;
  const shown = lines.slice(0, MAX_SAVE_HINTS);
  const more = lines.length - shown.length;
  o.err(`save the outputs with:\n${shown.join("\n")}\n${more > 0 ? `  (${more} more; or watch with --output DIR to save them all)\n` : ""}`);
}

/** `studio jobs ...`: the queue, as a client. */
export function registerJobs(program: Command, run: Runner) {
  const jobs = program.command("jobs").description("create, follow and manage jobs (client or admin token)");

  addTaskOptions(
    jobs
      .command("create <model> <prompt>")
      .description("queue a job; the task kind follows the model's engine unless --kind says")
      .option("--priority <n>", "higher runs first", "0")
      .option("--idempotency-key <key>", "the same key and request returns the same job; another request under it is refused")
      .option("--max-attempts <n>", "attempts before the job fails (default: the studio's)")
      .option("--watch", "follow the job until it ends (exit 1 unless it succeeds)")
      .option("--output <dir>", "follow the job (as --watch) and save its outputs in this folder as <job id>-<index>.<ext>"),
  ).action(
    run(async (g, o, opts: TaskFlags & { priority: string; idempotencyKey?: string; maxAttempts?: string; watch?: boolean; output?: string }, model: string, prompt: string) => {
      let kind = opts.kind;
      if (!kind) {
        const m = (await studioClient(RegistryService, g).getModel({ name: model })).model;
        kind = engineName(m?.source?.engine ?? 0) === "llama-cpp" ? "text" : "image";
      }
      const task = buildTask(kind, prompt, opts);
      const priority = Number(opts.priority);
      if (!Number.isInteger(priority)) throw new CliError(`--priority: expected a whole number (got ${opts.priority})`, EXIT.usage);
      const maxAttempts = opts.maxAttempts === undefined ? 0 : Number(opts.maxAttempts);
      if (!Number.isInteger(maxAttempts) || maxAttempts < 0) throw new CliError("--max-attempts: expected a positive whole number", EXIT.usage);
      const res = await studioClient(JobService, g).createJob({ model, task, priority, idempotencyKey: opts.idempotencyKey ?? "", maxAttempts });
      if (opts.watch || opts.output !== undefined) return watch(g, o, [res.job!.id], { statuses: [], model: "" }, opts.output);
      if (g.json) return printJson(o, JobSchema, res.job!);
      o.out(`${res.created ? "queued" : "exists"} ${res.job!.id}\n`);
    }),
  );

  jobs
    .command("list")
    .description("list jobs, newest first")
    .option("--status <status...>", `only these statuses (${STATUS_NAMES.join(", ")})`)
    .option("--model <name>", "only this model")
    .option("--limit <n>", "page size (at most 500)", "50")
    .option("--page-token <token>", "continue from a previous page")
    .action(
      run(async (g, o, opts: { status?: string[]; model?: string; limit: string; pageToken?: string }) => {
        const pageSize = Number(opts.limit);
        if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 500) throw new CliError("--limit: a whole number from 1 to 500", EXIT.usage);
        const res = await studioClient(JobService, g).listJobs({
          statuses: (opts.status ?? []).map(parseStatus),
          model: opts.model ?? "",
          pageSize,
          pageToken: opts.pageToken ?? "",
        });
        if (g.json) return printJson(o, ListJobsResponseSchema, res);
        const rows = res.jobs.map((j) => [
          j.id,
          j.model,
          statusName(j.status) + waitTag(j),
          `${j.attempts}/${j.maxAttempts}`,
          j.workerName || "-",
          formatTime(j.createTime),
          oneLine(taskPrompt(j.task), LIST_PROMPT_CHARS) || "-",
          oneLine(j.error, LIST_ERROR_CHARS) || "-",
        ]);
        o.out(renderTable(["ID", "MODEL", "STATUS", "ATTEMPTS", "WORKER", "CREATED", "PROMPT", "ERROR"], rows, { tty: o.isTTY }));
        if (res.nextPageToken) o.out(`more: --page-token ${res.nextPageToken}\n`);
      }),
    );

  jobs
    .command("get <id>")
    .description("show one job")
    .action(run(async (g, o, _opts, id: string) => printJob(o, g, (await studioClient(JobService, g).getJob({ jobId: id })).job!)));

  jobs
    .command("watch [ids...]")
    .description("follow jobs live (progress bars on a terminal, JSON lines otherwise); with ids, ends when they all end")
    .option("--status <status...>", "only these statuses")
    .option("--model <name>", "only this model")
    .option("--output <dir>", "save the outputs of each job that succeeds in this folder as <job id>-<index>.<ext>")
    .action(
      run(async (g, o, opts: { status?: string[]; model?: string; output?: string }, ids: string[]) =>
        watch(g, o, ids, { statuses: (opts.status ?? []).map(parseStatus), model: opts.model ?? "" }, opts.output),
      ),
    );

  for (const verb of ["cancel", "retry"] as const) {
    jobs
      .command(`${verb} <id>`)
      .description(verb === "cancel" ? "cancel a job (its worker is told to stop)" : "queue a failed or cancelled job again")
      .action(
        run(async (g, o, _opts, id: string) => {
          const client = studioClient(JobService, g);
          const res = verb === "cancel" ? await client.cancelJob({ jobId: id }) : await client.retryJob({ jobId: id });
          if (g.json) return printJson(o, JobSchema, res.job!);
          o.out(`${res.job!.id} ${statusName(res.job!.status)}\n`);
        }),
      );
  }

  jobs
    .command("promote <id> <model>")
    .description("queue the job's task again under another model, ahead of normal priority")
    .action(
      run(async (g, o, _opts, id: string, model: string) => {
        const res = await studioClient(JobService, g).promoteJob({ jobId: id, model });
        if (g.json) return printJson(o, JobSchema, res.job!);
        o.out(`queued ${res.job!.id} (from ${id})\n`);
      }),
    );

  jobs
    .command("output <id>")
    .description("download one output's bytes to a file (checked against its sha256)")
    .option("--index <n>", "which output", "0")
    .requiredOption("-o, --out <file>", "where to write it (- for stdout)")
    .action(
      run(async (g, o, opts: { index: string; out: string }, id: string) => {
        const index = Number(opts.index);
        if (!Number.isInteger(index) || index < 0) throw new CliError("--index: a whole number from 0", EXIT.usage);
        const summary = await download(g, id, index, opts.out);
        if (g.json) return printValue(o, summary);
        if (opts.out !== "-") o.err(`wrote ${summary.sizeBytes} bytes (${summary.mimeType}) to ${opts.out}\n`);
      }),
    );
}

/** Streams GetJobOutput into a temp file beside the target, checks size and sha256, then renames it into place. */
async function download(g: GlobalOptions, jobId: string, index: number, out: string) {
  const toStdout = out === "-";
  const tmp = `${out}.part-${process.pid}`;
  const fd = toStdout ? 1 : openSync(tmp, "w");
  const hash = createHash("sha256");
  let written = 0;
  let meta: { mimeType: string; sizeBytes: bigint; sha256: string } | undefined;
  try {
    for await (const res of studioClient(JobService, g).getJobOutput({ jobId, index })) {
      if (res.output) meta = res.output;
      if (res.chunk.length > 0) {
        writeSync(fd, res.chunk);
        hash.update(res.chunk);
        written += res.chunk.length;
      }
    }
    if (!meta) throw new CliError("the studio sent no output metadata", EXIT.failed);
    const digest = hash.digest("hex");
    if (BigInt(written) !== meta.sizeBytes || (meta.sha256 && meta.sha256 !== digest)) {
      throw new CliError(`output ${index} of ${jobId} arrived damaged (${written} bytes, sha256 ${digest}); try again`, EXIT.failed);
    }
    if (!toStdout) {
      closeSync(fd);
      renameSync(tmp, out);
    }
    return { jobId, index, file: out, mimeType: meta.mimeType, sizeBytes: written, sha256: digest };
  } catch (err) {
    if (!toStdout) {
      try {
        closeSync(fd);
      } catch {}
      rmSync(tmp, { force: true });
    }
    throw err;
  }
}
