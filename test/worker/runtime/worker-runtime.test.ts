import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import type { Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { JobStatus, type JobProgress, type Task } from "../../../gen/studio/v1/job_pb.js";
import { JobService } from "../../../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole } from "../../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../../gen/studio/v1/registry_service_pb.js";
import { DownloadManager } from "../../../worker/download/index.js";
import { MultiEngine } from "../../../worker/engines/multi-engine.js";
import { SyntheticEngine } from "../../../worker/engines/synthetic-engine.js";
import { SdCliEngine } from "../../../worker/engines/sd-cli-engine.js";
import { LlamaServerEngine } from "../../../worker/engines/llama-server-engine.js";
import type { Engine } from "../../../worker/engines/types.js";
import type { Downloads, JobOutcome, JobView } from "../../../worker/runtime/ports.js";
import { tryMountTmpfs, unmount } from "../../faults/tmpfs.js";
import { WorkerRuntime } from "../../../worker/runtime/worker-runtime.js";
import { Backoff } from "../../../contract/backoff.js";
import { SessionClient } from "../../../worker/session/session-client.js";
import { startTestStudio, type TestStudio } from "../../helpers/test-studio.js";
import { sha256Hex, startFileServer, watchJob } from "../../e2e/worker-harness.js";
import { dispatchOf } from "../../dispatch/fixtures.js";

/** Explicit: real processes on a loaded 2-core machine can take longer than bun's 5 s default. */
const TEST_TIMEOUT_MS = 30_000;
const HOOK_TIMEOUT_MS = 60_000;

/** Records how jobs end on the worker's side, so tests can await that instead of sleeping. */
class RecordingView implements JobView {
  readonly ends = new Map<string, { outcome: JobOutcome; message?: string }>();
  readonly steps: number[] = [];
  private waiters: Array<() => void> = [];
  started() {}
  progress(_jobId: string, p: JobProgress) {
    this.steps.push(p.step);
    for (const w of this.waiters.splice(0)) w();
  }
  finished(jobId: string, outcome: JobOutcome, message?: string) {
    this.ends.set(jobId, { outcome, message });
    for (const w of this.waiters.splice(0)) w();
  }
  async until(check: () => boolean) {
    while (!check()) await new Promise<void>((r) => this.waiters.push(r));
  }
  async ended(jobId: string) {
    await this.until(() => this.ends.has(jobId));
    return this.ends.get(jobId)!;
  }
}

let t: TestStudio;
let dir: string;
let jobs: Client<typeof JobService>;
const workers: Array<{ client: SessionClient; runtime: WorkerRuntime }> = [];
const silent = pino({ level: "silent" });

function startWorker(
  opts: {
    claims?: ModelEngine[];
    stepDelayMs?: number;
    url?: string;
    downloads?: Downloads;
    sdCli?: SdCliEngine;
    synthetic?: Engine;
    llama?: LlamaServerEngine;
    logger?: pino.Logger;
  } = {},
) {
  const engines = new MultiEngine([
    opts.synthetic ?? new SyntheticEngine({ stepDelayMs: opts.stepDelayMs ?? 0 }),
    opts.sdCli ?? new SdCliEngine({ binary: join(import.meta.dir, "../../fixtures/sd-cli") }),
    ...(opts.llama ? [opts.llama] : []),
  ]);
  const view = new RecordingView();
  const runtime = new WorkerRuntime({
    name: `rt-${workers.length}`,
    version: "test",
    slots: 1,
    engines: { kinds: opts.claims ?? engines.kinds, route: (m, s) => engines.route(m, s) },
    downloads: opts.downloads ?? new DownloadManager({ cacheDir: join(dir, "cache"), maxRetries: 0 }),
    view,
    logger: opts.logger ?? silent,
    workRoot: join(dir, "work"),
    jobTimeoutMs: 30_000,
  });
  const client = new SessionClient({
    transport: createConnectTransport({ baseUrl: opts.url ?? t.url, httpVersion: "2" }),
    handlers: runtime,
    logger: silent,
    backoff: new Backoff({ initialMs: 50, maxMs: 200 }),
  });
  runtime.attach(client);
  const running = client.run();
  workers.push({ client, runtime });
  return { runtime, client, view, running };
}

const synthTask = (prompt: string): Task => ({ kind: { case: "image", value: { prompt, seed: 1n } } }) as Task;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "worker-runtime-"));
  t = await startTestStudio({ heartbeatIntervalMs: 200, leaseTtlMs: 4000 });
  jobs = t.client(JobService);
  await t.client(RegistryService).createModel({
    name: "rt-synth",
    source: { engine: ModelEngine.SYNTHETIC, files: [], cliDefaults: { steps: 8, width: 32, height: 32 } },
  });
}, HOOK_TIMEOUT_MS);

afterEach(async () => {
  for (const w of workers.splice(0)) {
    w.runtime.stopNow();
    await w.client.stop(200);
  }
  await t.stop();
  rmSync(dir, { recursive: true, force: true });
}, HOOK_TIMEOUT_MS);

const imageTask = (prompt: string): Task => ({ kind: { case: "image", value: { prompt, seed: 1n } } }) as Task;

async function sdModel(name: string, url: string, sha256?: string) {
  await t.client(RegistryService).createModel({
    name,
    source: {
      engine: ModelEngine.SD_CPP,
      files: [{ role: ModelFileRole.DIFFUSION_MODEL, url, filename: "m.gguf", sha256 }],
      cliDefaults: { steps: 2, width: 16, height: 16 },
    },
  });
}

const tmpfsProbe = tryMountTmpfs(join(tmpdir(), `runtime-tmpfs-probe-${process.pid}`), "64k");

describe("job dir clean-up", () => {
  if (!tmpfsProbe.ok) console.warn(`worker-runtime: job dir removal failure test skipped: ${tmpfsProbe.reason}`);
  test.skipIf(!tmpfsProbe.ok)("a job dir that cannot be removed (a mount inside it: EBUSY) is logged with its path, and the job still succeeds", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const mounts: string[] = [];
    const inner = new SyntheticEngine({ stepDelayMs: 0 });
    const pinning: Engine = {
      kind: ModelEngine.SYNTHETIC,
      async run(req) {
        const mnt = join(req.workDir, "busy");
        const mounted = tryMountTmpfs(mnt, "16k");
        if (!mounted.ok) throw new Error(mounted.reason);
        mounts.push(mnt);
        return inner.run(req);
      },
      close: () => inner.close(),
    };
    try {
      const { view, runtime } = startWorker({ synthetic: pinning, logger });
      const { job } = await jobs.createJob({ model: "rt-synth", task: synthTask("busy dir") });
      expect(await view.ended(job!.id)).toMatchObject({ outcome: "succeeded" });
      // The job dir goes after the outcome is reported; the run is over once the runtime is idle.
      await runtime.whenIdle();
      const warned = lines.find((l) => l.msg === "cannot remove the job dir");
      expect(warned).toMatchObject({ jobId: job!.id, level: 40 });
      expect(String(warned!.path)).toBe(join(mounts[0]!, ".."));
      expect(String(warned!.err)).toContain("EBUSY");
    } finally {
      for (const m of mounts) unmount(m);
    }
  }, TEST_TIMEOUT_MS);
});

describe("WorkerRuntime with a real studio", () => {
  test("a download that gets 404 fails the job for good, naming the file and the status", async () => {
    const files = startFileServer({});
    try {
      await sdModel("rt-404", `${files.url}/gone.gguf`);
      const { view } = startWorker();
      const { job } = await jobs.createJob({ model: "rt-404", task: imageTask("x"), maxAttempts: 3 });
      const done = await watchJob(jobs, job!.id);
      expect(done.status).toBe(JobStatus.FAILED);
      expect(done.attempts).toBe(1);
      expect(done.error).toContain("HTTP 404");
      expect(done.error).toContain('"m.gguf"');
      expect((await view.ended(job!.id)).outcome).toBe("failed");
    } finally {
      files.stop();
    }
  }, TEST_TIMEOUT_MS);

  test("a file whose bytes do not match its sha256 fails the job with both digests", async () => {
    const files = startFileServer({ "m.gguf": new Uint8Array([1, 2, 3]) });
    try {
      const claimed = "ab".repeat(32);
      await sdModel("rt-mismatch", `${files.url}/m.gguf`, claimed);
      startWorker();
      const { job } = await jobs.createJob({ model: "rt-mismatch", task: imageTask("x"), maxAttempts: 3 });
      const done = await watchJob(jobs, job!.id);
      expect(done.status).toBe(JobStatus.FAILED);
      expect(done.error).toContain(claimed);
      expect(done.error).toContain("039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81");
    } finally {
      files.stop();
    }
  }, TEST_TIMEOUT_MS);

  test("an offer for an engine the worker does not have is declined with the reason, without counting the attempt", async () => {
    await t.client(RegistryService).createModel({
      name: "rt-llm",
      source: { engine: ModelEngine.LLAMA_CPP, files: [{ role: ModelFileRole.MODEL, url: "http://127.0.0.1:9/x.gguf", filename: "x.gguf" }] },
    });
    const { view } = startWorker({ claims: [ModelEngine.LLAMA_CPP] });
    const { job } = await jobs.createJob({ model: "rt-llm", task: { kind: { case: "text", value: { prompt: "hi" } } } as Task });
    const end = await view.ended(job!.id);
    expect(end.outcome).toBe("declined");
    expect(end.message).toBe('this worker has no llama-cpp engine for model "rt-llm" (it has: synthetic, sd-cpp)');
    const after = await watchJob(jobs, job!.id, { until: (j) => j.status === JobStatus.QUEUED });
    expect(after.attempts).toBe(0);
  }, TEST_TIMEOUT_MS);

  test("drain: when the grace period runs out the job is stopped and goes back to the queue", async () => {
    const { runtime, view } = startWorker({ stepDelayMs: 200 });
    const { job } = await jobs.createJob({ model: "rt-synth", task: synthTask("slow"), maxAttempts: 3 });
    await watchJob(jobs, job!.id, { until: (j) => j.status === JobStatus.RUNNING });
    await runtime.drain(50);
    expect(await view.ended(job!.id)).toEqual({ outcome: "failed", message: "the worker shut down before the job finished" });
    const after = await watchJob(jobs, job!.id, { until: (j) => j.status === JobStatus.QUEUED });
    expect(after.attempts).toBe(1);
    expect(after.error).toBe("the worker shut down before the job finished");
  }, TEST_TIMEOUT_MS);

  test("an output over the studio's limit fails the job for good instead of retrying it", async () => {
    await t.stop();
    t = await startTestStudio({ maxOutputBytes: 200 });
    jobs = t.client(JobService);
    await t.client(RegistryService).createModel({
      name: "rt-big",
      source: { engine: ModelEngine.SYNTHETIC, files: [], cliDefaults: { steps: 1, width: 64, height: 64 } },
    });
    const { view } = startWorker();
    const { job } = await jobs.createJob({ model: "rt-big", task: synthTask("too big"), maxAttempts: 3 });
    const done = await watchJob(jobs, job!.id);
    expect(done.status).toBe(JobStatus.FAILED);
    expect(done.attempts).toBe(1);
    expect(done.error).toMatch(/^the studio (refused an output|did not take the outputs): resource_exhausted/);
    expect(done.outputs).toEqual([]);
    expect((await view.ended(job!.id)).outcome).toBe("failed");
  }, TEST_TIMEOUT_MS);

  test("after an unverified download the worker reports the file's URL to the studio (cache_update, then hello)", async () => {
    const files = startFileServer({ "m.gguf": new Uint8Array(2048) });
    try {
      const url = `${files.url}/m.gguf`;
      await sdModel("rt-plain", url);
      const { runtime, view, client } = startWorker();
      const job = (await jobs.createJob({ model: "rt-plain", task: imageTask("plain") })).job!;
      expect((await watchJob(jobs, job.id)).status).toBe(JobStatus.SUCCEEDED);
      await view.ended(job.id);
      await runtime.cacheChanged();
      // The session is handled in order: once a later job completed, the cache_update before it was applied.
      const later = (await jobs.createJob({ model: "rt-synth", task: synthTask("later") })).job!;
      expect((await watchJob(jobs, later.id)).status).toBe(JobStatus.SUCCEEDED);
      const [entry] = dispatchOf(t).registry.all();
      expect([...entry!.cachedUrls]).toEqual([url]);
      expect([...entry!.cached]).toEqual([]);

      runtime.stopNow();
      await client.stop(200);
      const next = startWorker();
      await next.runtime.loadCache();
      expect(next.runtime.hello().cachedUrls).toEqual([url]);
    } finally {
      files.stop();
    }
  }, TEST_TIMEOUT_MS);

  test("the slot is free once complete went out: the next offer is taken while the last job still cleans up", async () => {
    const files = startFileServer({ "m.gguf": new Uint8Array(4096) });
    try {
      await sdModel("rt-slot", `${files.url}/m.gguf`);
      const manager = new DownloadManager({ cacheDir: join(dir, "cache"), maxRetries: 0 });
      const gate = Promise.withResolvers<void>();
      // Real downloads; only the release of each cached file waits for the gate, so the job's cleanup lags.
      const downloads: Downloads = {
        ensureAll: async (f, o) =>
          (await manager.ensureAll(f, o)).map((c) => ({ ...c, release: () => gate.promise.then(() => c.release()) })),
        cachedDigests: () => manager.cachedDigests(),
        cachedUrls: () => manager.cachedUrls(),
        touchCached: (f) => manager.touchCached(f),
      };
      const { view } = startWorker({ downloads });
      const first = (await jobs.createJob({ model: "rt-slot", task: imageTask("first") })).job!;
      expect((await watchJob(jobs, first.id)).status).toBe(JobStatus.SUCCEEDED);
      expect(view.ends.has(first.id)).toBe(false);
      const second = (await jobs.createJob({ model: "rt-slot", task: imageTask("second") })).job!;
      const done = await watchJob(jobs, second.id);
      expect(done.status).toBe(JobStatus.SUCCEEDED);
      expect(done.attempts).toBe(1);
      gate.resolve();
      expect((await view.ended(first.id)).outcome).toBe("succeeded");
      expect((await view.ended(second.id)).outcome).toBe("succeeded");
      expect([...view.ends.values()].some((e) => e.outcome === "declined")).toBe(false);
    } finally {
      files.stop();
    }
  }, TEST_TIMEOUT_MS);

  test("a text job whose model a warm llama-server serves skips the download cache; once that server is gone the next job goes through the cache again", async () => {
    const bytes = new Uint8Array(4096).fill(7);
    const files = startFileServer({ "m.gguf": bytes });
    const argvFile = join(dir, "llama-argv.json");
    const llama = new LlamaServerEngine({
      binary: join(import.meta.dir, "../../fixtures/llama-server"),
      idleMs: 60_000,
      healthTimeoutMs: 10_000,
      healthIntervalMs: 20,
      stopGraceMs: 2000,
      env: { ...process.env, FAKE_LLAMA_ARGV_FILE: argvFile },
    });
    try {
      await t.client(RegistryService).createModel({
        name: "rt-llama",
        source: { engine: ModelEngine.LLAMA_CPP, files: [{ role: ModelFileRole.MODEL, url: `${files.url}/m.gguf`, filename: "m.gguf", sha256: sha256Hex(bytes) }] },
      });
      const manager = new DownloadManager({ cacheDir: join(dir, "cache"), maxRetries: 0 });
      let ensured = 0;
      const downloads: Downloads = {
        ensureAll: (f, o) => {
          ensured++;
          return manager.ensureAll(f, o);
        },
        cachedDigests: () => manager.cachedDigests(),
        cachedUrls: () => manager.cachedUrls(),
        touchCached: (f) => manager.touchCached(f),
      };
      const { view } = startWorker({ downloads, llama });
      const blob = join(dir, "cache", "blobs", "sha256", sha256Hex(bytes));
      const run = async (prompt: string) => {
        const { job } = await jobs.createJob({ model: "rt-llama", task: { kind: { case: "text", value: { prompt, maxTokens: 3 } } } as Task });
        const done = await watchJob(jobs, job!.id);
        expect(done.status).toBe(JobStatus.SUCCEEDED);
        expect((await view.ended(job!.id)).outcome).toBe("succeeded");
      };
      await run("first");
      expect(ensured).toBe(1);
      // As if the file had not been used for a day: the warm job must mark it used (the LRU's order).
      const dayAgo = new Date(Date.now() - 86_400_000);
      utimesSync(blob, dayAgo, dayAgo);
      await run("second");
      expect(ensured).toBe(1);
      expect(statSync(blob).atimeMs).toBeGreaterThan(Date.now() - 60_000);
      const argv = JSON.parse(await Bun.file(argvFile).text()) as string[];
      await llama.server(argv[argv.indexOf("-m") + 1]!)!.stop();
      await run("third");
      expect(ensured).toBe(2);
    } finally {
      await llama.close();
      files.stop();
    }
  }, TEST_TIMEOUT_MS);

  test("a cancelled job that is slow to stop hands its slot to the next offer instead of declining it", async () => {
    const files = startFileServer({ "m.gguf": new Uint8Array(1024) });
    try {
      await sdModel("rt-stubborn", `${files.url}/m.gguf`);
      // sd-cli that ignores SIGTERM: the cancelled job holds the slot until SIGKILL after the grace period,
      // while the studio already counts that slot free and offers the next job.
      const sdCli = new SdCliEngine({
        binary: join(import.meta.dir, "../../fixtures/sd-cli"),
        env: { ...process.env, FAKE_SD_STEP_MS: "100", FAKE_SD_IGNORE_TERM: "1" },
        killGraceMs: 1500,
      });
      const { view } = startWorker({ sdCli });
      const task = { kind: { case: "image", value: { prompt: "stubborn", seed: 1n, overrides: { steps: 200 } } } } as Task;
      const { job: first } = await jobs.createJob({ model: "rt-stubborn", task });
      await view.until(() => view.steps.some((s) => s >= 1));
      await jobs.cancelJob({ jobId: first!.id });
      const { job: next } = await jobs.createJob({ model: "rt-synth", task: synthTask("next") });
      const done = await watchJob(jobs, next!.id);
      expect(done.status).toBe(JobStatus.SUCCEEDED);
      expect(done.attempts).toBe(1);
      expect((await view.ended(first!.id)).outcome).toBe("cancelled");
      expect((await view.ended(next!.id)).outcome).toBe("succeeded");
    } finally {
      files.stop();
    }
  }, TEST_TIMEOUT_MS);

  test("heartbeats keep the lease of a job that runs longer than the lease TTL", async () => {
    await t.stop();
    t = await startTestStudio({ heartbeatIntervalMs: 150, leaseTtlMs: 600 });
    jobs = t.client(JobService);
    await t.client(RegistryService).createModel({
      name: "rt-synth",
      source: { engine: ModelEngine.SYNTHETIC, files: [], cliDefaults: { steps: 8, width: 32, height: 32 } },
    });
    const { view } = startWorker({ stepDelayMs: 200 });
    const { job } = await jobs.createJob({ model: "rt-synth", task: synthTask("long"), maxAttempts: 1 });
    const done = await watchJob(jobs, job!.id);
    expect(done.status).toBe(JobStatus.SUCCEEDED);
    expect(done.attempts).toBe(1);
    expect((await view.ended(job!.id)).outcome).toBe("succeeded");
  }, TEST_TIMEOUT_MS);

  test("after the studio restarts the worker reconnects, lists its lease in hello, keeps it and completes the job", async () => {
    const { view } = startWorker({ stepDelayMs: 150 });
    const { job } = await jobs.createJob({ model: "rt-synth", task: synthTask("survives a restart") });
    await watchJob(jobs, job!.id, { until: (j) => j.status === JobStatus.RUNNING });
    const port = t.studio.port;
    const dataDir = t.dataDir;
    await t.stop({ keepDataDir: true });
    t = await startTestStudio({ port, dataDir, heartbeatIntervalMs: 200, leaseTtlMs: 4000 }, { ownsDataDir: true });
    jobs = t.client(JobService);
    const end = await view.ended(job!.id);
    expect(end.outcome).toBe("succeeded");
    const done = await watchJob(jobs, job!.id);
    expect(done.status).toBe(JobStatus.SUCCEEDED);
    expect(done.attempts).toBe(1);
    expect(done.outputs.length).toBe(1);
  }, TEST_TIMEOUT_MS);
});
