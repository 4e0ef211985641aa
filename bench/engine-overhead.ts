#!/usr/bin/env bun
/**
 * Engine overhead (issue 15): what the studio and the worker add on top of the engine itself, on
 * the same tiny models and the same machine, side by side in one run.
 *
 * - image: an image job through the studio and the compiled worker (CreateJob to SUCCEEDED over
 *   WatchJobs, the files already in the worker's cache) against `sd-cli` run directly with the
 *   same arguments (exec to exit).
 * - text, time to first token: a streamed /v1/chat/completions request to a warm llama-server
 *   (request to the first content event) against a chat job through the studio and the worker,
 *   CreateJob to the worker holding its first token (the worker logs "first token"; both clocks are
 *   this machine's). Clients see no tokens yet (no token streaming), so it is also timed to the
 *   first progress with a token a WatchJobs client sees, on a job long enough to show one: that
 *   figure includes the progress throttles (250 ms in the worker and in the studio). The worker's
 *   llama-server is warm too (a first job started it). Also whole-job latency for a fixed number
 *   of tokens against the same request made directly.
 *
 *   bun bench/engine-overhead.ts [--runs 7] [--text-runs 15] [--smoke]
 *
 * Needs the engines (STUDIO_TEST_ENGINES, as the tests do) and builds dist/studio-worker when it
 * is missing or older than its sources. Direct and through-studio runs alternate (image rounds
 * also swap which goes first), so that load drifting on a shared machine hits both sides alike; on
 * a busy machine the wall-clock figures still move by hundreds of milliseconds between runs, and
 * the CPU figures (studio and worker process CPU per job, from /proc, against the engine's own
 * CPU) are the steadier measure.
 */
import { create } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { JobPhase, JobStatus, TaskSchema, type Job, type Task } from "../gen/studio/v1/job_pb.js";
import { JobService } from "../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole } from "../gen/studio/v1/model_pb.js";
import { RegistryService } from "../gen/studio/v1/registry_service_pb.js";
import { buildWorker, compiledWorker, olderThanSources } from "../scripts/worker-binary.js";
import { startModelServer } from "../test/helpers/model-server.js";
import { realEngines } from "../test/helpers/real-engines.js";
import { exitOnSignals } from "./lib/child.js";
import { freeLoopbackPort, onPickedPorts, PortTaken } from "./lib/free-port.js";
import { cpuSeconds } from "./lib/proc-stats.js";
import { emitFigures, figureRecorder, type Figure } from "./lib/report.js";
import { epochMs, summarize } from "./lib/stats.js";
import { readLines } from "../test/helpers/read-lines.js";
import { startStudioProcess } from "./lib/studio-process.js";

exitOnSignals();
const { values: args } = parseArgs({
  options: { smoke: { type: "boolean", default: false }, runs: { type: "string" }, "text-runs": { type: "string" } },
});
const smoke = args.smoke!;
const imageRuns = Number(args.runs ?? (smoke ? 1 : 7));
const textRuns = Number(args["text-runs"] ?? (smoke ? 2 : 15));
const engines = realEngines();
if (!engines) {
  console.error("engine-overhead: STUDIO_TEST_ENGINES is unset: it names the directory with llama-server, sd-cli and the tiny models");
  process.exit(2);
}

const IMAGE = { steps: 2, width: 64, height: 64, seed: 42n, prompt: "a lighthouse at dusk" };
const TEXT_TOKENS = 32;
/**
 * Long enough (a second or more here, on the 32k-context variant of the tiny model) that a watching
 * client sees a token progress before the job ends, past the studio's 250 ms progress throttle.
 */
const LONG_TOKENS = 2000;
const longRuns = Math.min(textRuns, 5);

// A binary older than the worker's sources would measure old code; a fresh one is kept (a build takes seconds).
let workerBinary = compiledWorker();
if (!workerBinary || olderThanSources(workerBinary)) {
  console.error("building dist/studio-worker (bun run build:worker)");
  workerBinary = buildWorker();
}

const scratch = mkdtempSync(join(tmpdir(), "engine-overhead-"));
const models = (["tiny-zimage-dit.gguf", "tiny-zimage-qwen3.gguf", "tiny-zimage-vae.safetensors", "tiny-llama.gguf", "tiny-llama-long.gguf"] as const).map((n) => engines.model(n));
const files = startModelServer(models);
const studio = await startStudioProcess({ logLevel: "warn" });
const transport = createConnectTransport({ baseUrl: studio.url, httpVersion: "2" });
const jobs = createClient(JobService, transport);
const registry = createClient(RegistryService, transport);
await registry.createModel({
  name: "tiny-zimage",
  source: {
    engine: ModelEngine.SD_CPP,
    files: [
      files.file(ModelFileRole.DIFFUSION_MODEL, models[0]!),
      files.file(ModelFileRole.TEXT_ENCODER, models[1]!),
      files.file(ModelFileRole.VAE, models[2]!),
    ],
    cliDefaults: { cfgScale: 1, steps: IMAGE.steps, width: IMAGE.width, height: IMAGE.height, samplingMethod: "euler" },
  },
});
await registry.createModel({ name: "tiny-llama", source: { engine: ModelEngine.LLAMA_CPP, files: [files.file(ModelFileRole.MODEL, models[3]!)] } });
await registry.createModel({ name: "tiny-llama-long", source: { engine: ModelEngine.LLAMA_CPP, files: [files.file(ModelFileRole.MODEL, models[4]!)] } });

const worker = Bun.spawn(
  [workerBinary, "--server", studio.url, "--name", "bench", "--engines", "sd-cpp,llama-cpp", "--sd-cli", engines.sdCli, "--llama-server", engines.llamaServer,
    "--cache-dir", join(scratch, "cache"), "--work-dir", join(scratch, "work"), "--progress", "log", "--log-level", "info", "--llama-idle-seconds", "600"],
  { stdout: "pipe", stderr: "inherit" },
);
process.once("exit", () => worker.kill("SIGKILL"));
/** From the worker's log, per job: when it held its first token (and how long llama-server took to it), and how long sd-cli ran. */
const firstTokenAt = new Map<string, { time: number; engineMs: number }>();
const sdRunMs = new Map<string, number>();
void (async () => {
  for await (const line of readLines(worker.stdout)) {
    if (line.includes('"first token"')) {
      const entry = JSON.parse(line) as { jobId: string; time: number; ms: number };
      firstTokenAt.set(entry.jobId, { time: entry.time, engineMs: entry.ms });
    } else if (line.includes('"sd-cli exited"')) {
      const entry = JSON.parse(line) as { jobId: string; ms: number };
      sdRunMs.set(entry.jobId, entry.ms);
    }
  }
})();
/** Waits (briefly) for a job's line from the worker's log, which may trail the job's end. */
async function logged<T>(map: Map<string, T>, jobId: string): Promise<T | undefined> {
  for (let wait = 0; !map.has(jobId) && wait < 100; wait++) await Bun.sleep(10);
  return map.get(jobId);
}

/** Creates a job and follows it over WatchJobs; `firstToken` is when a RUNNING progress with a token was first seen. */
async function runJob(model: string, task: Task): Promise<{ totalMs: number; firstTokenMs?: number; startedAt: number; job: Job }> {
  const abort = new AbortController();
  const startedAt = epochMs();
  const start = performance.now();
  const created = (await jobs.createJob({ model, task, maxAttempts: 1 })).job!;
  let firstTokenMs: number | undefined;
  try {
    for await (const res of jobs.watchJobs({ jobIds: [created.id], includeSnapshot: true }, { signal: abort.signal })) {
      const j = res.job;
      if (!j) continue;
      if (firstTokenMs === undefined && j.progress?.phase === JobPhase.RUNNING && j.progress.step > 0) firstTokenMs = performance.now() - start;
      if (j.status === JobStatus.SUCCEEDED) return { totalMs: performance.now() - start, firstTokenMs, startedAt, job: j };
      if (j.status === JobStatus.FAILED || j.status === JobStatus.CANCELLED) throw new Error(`job ${j.id} ended ${JobStatus[j.status]}: ${j.error}`);
    }
  } finally {
    abort.abort();
  }
  throw new Error("WatchJobs ended early");
}

const imageTask = () => create(TaskSchema, { kind: { case: "image", value: { prompt: IMAGE.prompt, seed: IMAGE.seed, batchCount: 1 } } });
const chat = (maxTokens: number) => create(TaskSchema, { kind: { case: "text", value: { messages: [{ role: "user", content: "tell me a story" }], maxTokens, seed: 7n } } });

/** sd-cli run directly with the argv the worker gives it (files from the same places on disk). */
async function sdDirect(): Promise<number> {
  const out = mkdtempSync(join(scratch, "direct-"));
  const argv = [engines!.sdCli, "--diffusion-model", models[0]!.path, "--llm", models[1]!.path, "--vae", models[2]!.path, "-p", IMAGE.prompt, "-s", String(IMAGE.seed),
    "-b", "1", "--cfg-scale", "1", "--steps", String(IMAGE.steps), "-W", String(IMAGE.width), "-H", String(IMAGE.height), "--sampling-method", "euler", "-o", join(out, "out.png")];
  const start = performance.now();
  const proc = Bun.spawn(argv, { cwd: out, stdout: "ignore", stderr: "ignore" });
  if ((await proc.exited) !== 0) throw new Error("sd-cli direct run failed");
  const ms = performance.now() - start;
  const cpu = proc.resourceUsage()!.cpuTime;
  sdCpuMs.push(Number(cpu.user + cpu.system) / 1000);
  rmSync(out, { recursive: true, force: true });
  return ms;
}
const sdCpuMs: number[] = [];

/** One streamed chat request to a warm llama-server: time to the first content event and to the end. */
async function llamaDirect(port: number, maxTokens: number): Promise<{ firstTokenMs: number; totalMs: number }> {
  const start = performance.now();
  const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: "tell me a story" }], max_tokens: maxTokens, seed: 7, stream: true }),
    // llama-server closes the connection after a streamed answer without saying so: a pooled one is reset (as in llama-client.ts).
    keepalive: false,
  });
  let firstTokenMs: number | undefined;
  const decoder = new TextDecoder();
  for await (const chunk of res.body!) {
    if (firstTokenMs === undefined && decoder.decode(chunk, { stream: true }).includes('"content":"')) firstTokenMs = performance.now() - start;
  }
  return { firstTokenMs: firstTokenMs ?? Number.NaN, totalMs: performance.now() - start };
}

/** CPU the studio and the worker process (not its engine children) spent, summed over the jobs measured. */
const overheadCpu = { studio: 0, worker: 0, jobs: 0 };
async function measuredJob(model: string, task: Task) {
  const before = { studio: cpuSeconds(studio.pid), worker: cpuSeconds(worker.pid) };
  const result = await runJob(model, task);
  overheadCpu.studio += cpuSeconds(studio.pid) - before.studio;
  overheadCpu.worker += cpuSeconds(worker.pid) - before.worker;
  overheadCpu.jobs++;
  return result;
}
function takeCpu() {
  const taken = { ...overheadCpu };
  Object.assign(overheadCpu, { studio: 0, worker: 0, jobs: 0 });
  return { studioMs: (taken.studio * 1000) / taken.jobs, workerMs: (taken.worker * 1000) / taken.jobs };
}

/**
 * llama-server on a port picked here (it cannot report a port 0 back). Another socket may take the
 * port before llama-server binds it, and then llama-server exits: it is started again on a new pick.
 */
async function startLlamaServer(model: string): Promise<{ server: Bun.Subprocess; port: number }> {
  return onPickedPorts("engine-overhead: llama-server", async () => {
    const port = await freeLoopbackPort();
    const server = Bun.spawn([engines!.llamaServer, "-m", model, "--host", "127.0.0.1", "--port", String(port)], { stdout: "ignore", stderr: "ignore" });
    const kill = () => server.kill("SIGKILL");
    process.once("exit", kill);
    for (let i = 0; server.exitCode === null && i < 1200; i++) {
      const ok = await fetch(`http://127.0.0.1:${port}/health`, { keepalive: false }).then((r) => r.status === 200, () => false);
      if (ok) return { server, port };
      await Bun.sleep(25);
    }
    const exited = server.exitCode !== null;
    kill();
    await server.exited;
    process.off("exit", kill);
    // Its output is not kept (it would cost the measured runs): an exit before /health answers is taken for a lost port.
    if (exited) throw new PortTaken(`llama-server on port ${port} exited (code ${server.exitCode}) before /health answered`);
    throw new Error(`llama-server on port ${port} did not become healthy within 30 s`);
  });
}

const figures: Figure[] = [];
const add = figureRecorder(figures, "engine overhead");
try {
  // Warm-up: the worker downloads and caches the files, starts its llama-server; sd-cli's page cache is warm.
  await runJob("tiny-zimage", imageTask());
  await runJob("tiny-llama", chat(4));
  await runJob("tiny-llama-long", chat(4));
  await sdDirect();

  const direct: number[] = [];
  const through: number[] = [];
  const aroundSd: number[] = [];
  // Alternating which side goes first each round, so that drift on a shared machine hits both alike.
  for (let i = 0; i < imageRuns; i++) {
    if (i % 2 === 0) direct.push(await sdDirect());
    const job = await measuredJob("tiny-zimage", imageTask());
    through.push(job.totalMs);
    const sdMs = await logged(sdRunMs, job.job.id);
    if (sdMs !== undefined) aroundSd.push(job.totalMs - sdMs);
    if (i % 2 === 1) direct.push(await sdDirect());
  }
  const imageCpu = takeCpu();
  const d = summarize(direct);
  const s = summarize(through);
  add("image job: sd-cli direct, exec to exit, median", d.p50, "ms", { note: `${IMAGE.width}x${IMAGE.height}, ${IMAGE.steps} steps, ${imageRuns} runs` });
  add("image job: studio + worker, CreateJob to SUCCEEDED, median", s.p50, "ms");
  add("image job: overhead of studio + worker (median difference)", s.p50 - d.p50, "ms");
  add("image job: studio + worker / sd-cli direct", s.p50 / d.p50, "x");
  add("image job: time around sd-cli in the same job (total minus sd-cli's own run), median", summarize(aroundSd).p50, "ms", { note: "create, offer, files checked, work dir, upload, commit, watch" });
  const sdCpu = summarize(sdCpuMs.slice(1)).p50;
  add("image job: sd-cli CPU per run, median", sdCpu, "ms");
  add("image job: studio CPU per job", imageCpu.studioMs, "ms");
  add("image job: worker CPU per job (without sd-cli)", imageCpu.workerMs, "ms");
  add("image job: (studio + worker CPU) / sd-cli CPU", (imageCpu.studioMs + imageCpu.workerMs) / sdCpu, "x");

  const { server, port } = await startLlamaServer(models[3]!.path);
  await llamaDirect(port, 4);
  const ttftDirect: number[] = [];
  const ttftWorker: number[] = [];
  const beforeRequest: number[] = [];
  const ttftSeen: number[] = [];
  const totalDirect: number[] = [];
  const totalThrough: number[] = [];
  const serverCpuBefore = cpuSeconds(server.pid);
  for (let i = 0; i < textRuns; i++) {
    const a = await llamaDirect(port, TEXT_TOKENS);
    ttftDirect.push(a.firstTokenMs);
    totalDirect.push(a.totalMs);
    const b = await measuredJob("tiny-llama", chat(TEXT_TOKENS));
    totalThrough.push(b.totalMs);
    const first = await logged(firstTokenAt, b.job.id);
    if (first !== undefined) {
      ttftWorker.push(first.time - b.startedAt);
      beforeRequest.push(first.time - b.startedAt - first.engineMs);
    }
    if (i < longRuns) {
      const long = await runJob("tiny-llama-long", chat(LONG_TOKENS));
      if (long.firstTokenMs !== undefined) ttftSeen.push(long.firstTokenMs);
    }
  }
  // CPU is read in 10 ms ticks: summed over all the short jobs, then divided.
  const textCpu = takeCpu();
  // The direct server did the short and nothing else: its CPU per request.
  const serverCpuMs = ((cpuSeconds(server.pid) - serverCpuBefore) * 1000) / textRuns;
  server.kill("SIGTERM");
  await server.exited;
  const td = summarize(ttftDirect);
  const tw = summarize(ttftWorker);
  const ts = summarize(ttftSeen);
  add("time to first token: llama-server direct (warm), median", td.p50, "ms", { note: `${textRuns} runs` });
  add("time to first token: studio + worker (warm server), CreateJob to the worker's first token, median", tw.p50, "ms");
  add("time to first token: studio + worker, p90", tw.p90, "ms");
  add("time to first token: overhead of studio + worker (median difference)", tw.p50 - td.p50, "ms");
  add("time to first token: CreateJob to the worker's request to llama-server, same job, median", summarize(beforeRequest).p50, "ms");
  add("time to first token as a WatchJobs client sees it (first progress with a token), median", ts.p50, "ms", { note: `${longRuns} jobs of ${LONG_TOKENS} tokens; includes the 250 ms progress throttles` });
  const ad = summarize(totalDirect);
  const at = summarize(totalThrough);
  add(`text job of ${TEXT_TOKENS} tokens: llama-server direct, median`, ad.p50, "ms");
  add(`text job of ${TEXT_TOKENS} tokens: studio + worker, CreateJob to SUCCEEDED, median`, at.p50, "ms");
  add(`text job of ${TEXT_TOKENS} tokens: overhead of studio + worker (median difference)`, at.p50 - ad.p50, "ms");
  add(`text job of ${TEXT_TOKENS} tokens: llama-server CPU per request (direct)`, serverCpuMs, "ms");
  add(`text job of ${TEXT_TOKENS} tokens: studio CPU per job`, textCpu.studioMs, "ms");
  add(`text job of ${TEXT_TOKENS} tokens: worker CPU per job (without llama-server)`, textCpu.workerMs, "ms");
  emitFigures("engine-overhead", figures);
} finally {
  worker.kill("SIGTERM");
  await worker.exited;
  await studio.stop();
  files.stop();
  rmSync(scratch, { recursive: true, force: true });
}
