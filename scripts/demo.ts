#!/usr/bin/env bun
/**
 * `bun run demo`: the whole system in one command on a fresh clone. Starts the studio on a
 * temporary embedded database, a synthetic worker (the compiled dist/studio-worker when built,
 * else `bun worker/main.ts`), creates a few jobs on the seeded `synthetic` model, shows them flow
 * (WatchJobs), writes their PNGs to a folder it names and prints the web page's URL. Ctrl-C
 * stops the worker (drain), then the studio, and removes the temporary database unless --keep.
 *
 *   bun run demo [--jobs 4] [--out DIR] [--port 8080] [--keep] [--exit-when-done]
 *
 * Without --port it prefers STUDIO_PORT or 8080 and, when that port is taken, moves to a free one
 * and says so; --port P means P or nothing.
 */
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { startStudio, type Studio } from "../server/app.js";
import { createLogger } from "../server/log.js";
import { checkPortFree, describeListenError } from "../server/http/port-check.js";
import { JobPhase, JobStatus, type Job } from "../gen/studio/v1/job_pb.js";
import { JobService } from "../gen/studio/v1/job_service_pb.js";
import { WorkerService } from "../gen/studio/v1/worker_service_pb.js";
import { outputFileName } from "../contract/output-files.js";
import { startDemoWorker, type DemoWorker } from "./demo-worker.js";

const PROMPTS = [
  "a lighthouse at dusk, oil painting",
  "a red fox in fresh snow",
  "a tiny robot watering a bonsai",
  "a paper boat on a rainy street",
  "an old map of an imaginary island",
  "a cup of tea on a windowsill",
];

const TERMINAL = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED];

const { values: args } = parseArgs({
  options: {
    jobs: { type: "string", default: "4" },
    out: { type: "string" },
    port: { type: "string" },
    keep: { type: "boolean", default: false },
    "exit-when-done": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (args.help) {
  console.log("usage: bun run demo [--jobs N] [--out DIR] [--port P] [--keep] [--exit-when-done]");
  console.log("  without --port the studio takes STUDIO_PORT or 8080, or any free port when that one is in use");
  process.exit(0);
}
const jobCount = Number(args.jobs);
if (!Number.isInteger(jobCount) || jobCount < 1 || jobCount > 100) {
  console.error(`demo: --jobs must be a whole number from 1 to 100 (got ${JSON.stringify(args.jobs)})`);
  process.exit(2);
}

const port = args.port === undefined ? undefined : Number(args.port);
if (port !== undefined && !isPort(port)) {
  console.error(`demo: --port must be a port number from 0 to 65535 (got ${JSON.stringify(args.port)})`);
  process.exit(2);
}
const preferredPort = process.env.STUDIO_PORT ? Number(process.env.STUDIO_PORT) : 8080;
if (port === undefined && !isPort(preferredPort)) {
  console.error(`demo: STUDIO_PORT must be a port number from 0 to 65535 (got ${JSON.stringify(process.env.STUDIO_PORT)})`);
  process.exit(2);
}

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 65535;
}

const dataDir = mkdtempSync(join(tmpdir(), "studio-demo-db-"));

/**
 * --port exactly; else the preferred port (STUDIO_PORT or 8080) when it is free, or any free port,
 * saying why it moved: a person who opens :8080 out of habit would otherwise find something else there.
 */
async function startDemoStudio(): Promise<Studio> {
  const logger = createLogger("warn");
  const base = { host: "127.0.0.1", dataDir, logLevel: "warn" as const };
  if (port !== undefined) return startStudio({ ...base, port }, { logger });
  const busy = await checkPortFree(base.host, preferredPort).then(
    () => undefined,
    (err: unknown) => describeListenError(err, base.host, preferredPort) ?? String(err),
  );
  if (busy === undefined) return startStudio({ ...base, port: preferredPort }, { logger });
  const studio = await startStudio({ ...base, port: 0 }, { logger });
  console.log(`note    ${busy.split(";")[0]}, so the demo took port ${studio.port} instead (--port P picks one)`);
  return studio;
}

const studio = await startDemoStudio().catch((err: unknown) => {
  rmSync(dataDir, { recursive: true, force: true });
  const problem = port === undefined ? undefined : describeListenError(err, "127.0.0.1", port);
  console.error(`demo: the studio did not start: ${problem ?? (err instanceof Error ? err.message : String(err))}`);
  process.exit(1);
});
const outDir = resolve(args.out ?? mkdtempSync(join(tmpdir(), "studio-demo-output-")));
mkdirSync(outDir, { recursive: true });
const transport = createConnectTransport({ baseUrl: studio.url, httpVersion: "2" });
const jobs = createClient(JobService, transport);
const workers = createClient(WorkerService, transport);
const watchAbort = new AbortController();
let worker: DemoWorker | undefined;
let stopping: Promise<void> | undefined;

/** Drains the worker, stops the studio, removes the temporary database unless --keep. Idempotent. */
function shutdown(code: number): Promise<void> {
  stopping ??= (async () => {
    watchAbort.abort();
    await worker?.stop();
    await studio.stop();
    if (args.keep) console.log(`kept the database in ${dataDir}`);
    else rmSync(dataDir, { recursive: true, force: true });
    process.exitCode = code;
  })();
  return stopping;
}
let signals = 0;
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.on(signal, () => {
    if (++signals > 1) process.exit(130);
    console.log(`\n${signal}: stopping the worker and the studio...`);
    void shutdown(0).then(() => process.exit());
  });

try {
  console.log(`studio  ${studio.url}  web page ${studio.url}/  (temporary database in ${dataDir})`);
  // Synthetic jobs are cheap: one slot per job (up to 4) lets them run side by side.
  worker = await startDemoWorker(studio.url, { workDir: dataDir, slots: Math.min(jobCount, 4) });
  console.log(`worker  ${worker.describe}`);
  await waitForWorker();

  const ids: string[] = [];
  for (let i = 0; i < jobCount; i++) {
    const prompt = PROMPTS[i % PROMPTS.length]!;
    const res = await jobs.createJob({ model: "synthetic", task: { kind: { case: "image", value: { prompt, batchCount: 1 } } } });
    ids.push(res.job!.id);
    console.log(`queued  ${short(res.job!.id)}  "${prompt}"`);
  }
  const failed = await watchJobs(ids);
  console.log(`\n${jobCount - failed} of ${jobCount} jobs succeeded; images in ${outDir}`);
  console.log(`web page  ${studio.url}/`);
  if (args["exit-when-done"]) await shutdown(failed === 0 ? 0 : 1);
  else console.log("Ctrl-C to stop.");
} catch (err) {
  // An interrupted watch is the Ctrl-C path, already stopping; anything else is a real failure.
  if (!stopping) {
    console.error(`demo: ${err instanceof Error ? err.message : String(err)}`);
    await shutdown(1);
  }
}

/** Waits until the studio lists the worker (its session is up), for at most 60 s. */
async function waitForWorker(): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const { workers: list } = await workers.listWorkers({});
    if (list.length > 0) return;
    if (worker?.exited) throw new Error(`the worker exited with ${worker.exitCode}:\n${worker.tail().join("\n")}`);
    await Bun.sleep(100);
  }
  throw new Error(`the worker did not connect within 60 s:\n${worker?.tail().join("\n")}`);
}

/**
 * Follows the jobs until each is terminal, saving outputs as they succeed; resolves to how many
 * did not succeed. The snapshot carries whatever happened before the watch began.
 */
async function watchJobs(ids: string[]): Promise<number> {
  const done = new Map<string, JobStatus>();
  const lastLine = new Map<string, string>();
  const stream = jobs.watchJobs({ jobIds: ids, includeSnapshot: true }, { signal: watchAbort.signal });
  for await (const { job } of stream) {
    if (!job || done.has(job.id)) continue;
    const line = describe(job);
    if (line !== lastLine.get(job.id)) console.log(`${short(job.id)}  ${line}`);
    lastLine.set(job.id, line);
    if (job.status === JobStatus.SUCCEEDED) await saveOutputs(job);
    if (TERMINAL.includes(job.status)) done.set(job.id, job.status);
    if (done.size === ids.length) break;
  }
  if (done.size < ids.length) throw new Error("the job watch ended before every job finished");
  return [...done.values()].filter((s) => s !== JobStatus.SUCCEEDED).length;
}

/** One line about where a job is: status, and progress while running. */
function describe(job: Job): string {
  const status = JobStatus[job.status];
  const p = job.progress;
  if (job.status === JobStatus.RUNNING && p && p.phase !== JobPhase.UNSPECIFIED) {
    const steps = p.steps > 0 ? ` ${p.step}/${p.steps}` : "";
    return `${status} ${JobPhase[p.phase].toLowerCase()}${steps}${p.message ? `  ${p.message}` : ""}`;
  }
  if (job.status === JobStatus.FAILED) return `${status}  ${job.error}`;
  if (job.status === JobStatus.SUCCEEDED) return `${status}  ${job.outputs.length} output(s) from ${job.workerName || "a worker"}`;
  return status;
}

/** Streams each output with GetJobOutput and writes it as <out>/<job id>-<index>.<ext>. */
async function saveOutputs(job: Job): Promise<void> {
  for (const output of job.outputs) {
    const parts: Uint8Array[] = [];
    for await (const res of jobs.getJobOutput({ jobId: job.id, index: output.index })) if (res.chunk.length > 0) parts.push(res.chunk);
    const file = join(outDir, outputFileName(job.id, output.index, output.mimeType));
    writeFileSync(file, Buffer.concat(parts));
    console.log(`saved   ${file}`);
  }
}

/** The tail of a job id: ids are time-ordered, so their heads look alike. */
function short(id: string): string {
  return id.length > 8 ? `…${id.slice(-8)}` : id;
}
