import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@connectrpc/connect";
import { JobPhase, JobStatus, type ImageTask, type Job, type Task } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { sqliteOf, startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { fakeSdImage } from "../fixtures/fake-image.js";
import { syntheticImage } from "../../worker/engines/synthetic.js";
import {
  WorkerProcess,
  alive,
  buildWorkerBinary,
  removeWorkerBinary,
  readOutput,
  recordedPids,
  sha256Hex,
  startFileServer,
  watchJob,
  writeShim,
} from "./worker-harness.js";

/** Explicit: real processes on a loaded 2-core machine can take longer than bun's 5 s default. */
const TEST_TIMEOUT_MS = 30_000;
const HOOK_TIMEOUT_MS = 60_000;

/**
 * The compiled worker binary against a real studio (HTTP/2 on loopback, SQLite in a temp dir),
 * a local file server for the model files, and the fake sd-cli behind a shim that records its pid
 * and lets each job pick the fixture's mode: the exact argv it was given, its deterministic PNGs,
 * and the faults the real sd-cli cannot show (a grandchild process to kill with the group). The
 * flows the real engines can show run against them in real-engines.test.ts.
 */
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff);
const FILES = {
  "z-image.gguf": bytes(300_000, 1),
  "qwen3-4b.gguf": bytes(120_000, 2),
  "ae.safetensors": bytes(50_000, 3),
  "style.safetensors": bytes(10_000, 4),
};

let t: TestStudio;
let files: ReturnType<typeof startFileServer>;
let dir: string;
let jobs: Client<typeof JobService>;
let sdCtl: string;
let llamaCtl: string;
let sdPids: string;
let llamaPids: string;
let sdShim: string;
let llamaShim: string;
let a: WorkerProcess;

const imageTask = (prompt: string, seed: bigint, batchCount = 1): Task =>
  ({ kind: { case: "image", value: { prompt, seed, batchCount } } }) as Task;

async function createJob(model: string, task: Task, maxAttempts = 1): Promise<Job> {
  const res = await jobs.createJob({ model, task, maxAttempts });
  return res.job!;
}

function setMode(ctl: string, vars: Record<string, string>) {
  writeFileSync(ctl, Object.entries(vars).map(([k, v]) => `export ${k}='${v}'\n`).join(""));
}

function workerArgs(name: string, extra: string[]): string[] {
  return [
    "--server", t.url,
    "--name", name,
    "--cache-dir", join(dir, "cache"),
    "--work-dir", join(dir, "work"),
    "--sd-cli", sdShim,
    "--llama-server", llamaShim,
    "--progress", "log",
    ...extra,
  ];
}

beforeAll(async () => {
  buildWorkerBinary();
  dir = mkdtempSync(join(tmpdir(), "worker-e2e-"));
  t = await startTestStudio({ heartbeatIntervalMs: 300, leaseTtlMs: 5000 });
  jobs = t.client(JobService);
  files = startFileServer(FILES);
  sdCtl = join(dir, "sd.ctl");
  llamaCtl = join(dir, "llama.ctl");
  sdPids = join(dir, "sd.pids");
  llamaPids = join(dir, "llama.pids");
  sdShim = writeShim(dir, "sd-cli", "sd-cli", sdCtl, sdPids);
  llamaShim = writeShim(dir, "llama-server", "llama-server", llamaCtl, llamaPids);

  const registry = t.client(RegistryService);
  const file = (role: ModelFileRole, filename: keyof typeof FILES) => ({
    role,
    filename,
    url: `${files.url}/${filename}`,
    sha256: sha256Hex(FILES[filename]),
    approxBytes: BigInt(FILES[filename].byteLength),
  });
  await registry.createModel({
    name: "e2e-image",
    source: {
      engine: ModelEngine.SD_CPP,
      files: [
        file(ModelFileRole.DIFFUSION_MODEL, "z-image.gguf"),
        file(ModelFileRole.TEXT_ENCODER, "qwen3-4b.gguf"),
        file(ModelFileRole.VAE, "ae.safetensors"),
        file(ModelFileRole.LORA, "style.safetensors"),
      ],
      cliDefaults: { cfgScale: 1, steps: 4, width: 64, height: 64, samplingMethod: "euler" },
    },
  });

  a = new WorkerProcess(
    workerArgs("e2e-a", [
      "--engines", "sd-cpp,llama-cpp,synthetic",
      "--job-timeout", "60",
      "--llama-idle-seconds", "600",
      "--drain-grace-seconds", "30",
    ]),
    { FAKE_SD_ARGV_FILE: join(dir, "sd.argv"), FAKE_SD_CHILD_PID_FILE: join(dir, "sd-child.pid") },
  );
  await a.waitForLine((l) => l.msg === "connected to the studio");
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  a?.proc.kill("SIGKILL");
  await a?.exited;
  for (const pid of [...recordedPids(sdPids), ...recordedPids(llamaPids)]) if (alive(pid)) process.kill(pid, "SIGKILL");
  await t?.stop();
  files?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  removeWorkerBinary();
}, HOOK_TIMEOUT_MS);

describe("the compiled worker against a real studio", () => {
  test("an sd-cpp job: files downloaded and verified, exact sd-cli argv, the fixture's PNG reaches the studio", async () => {
    // Steps of 250 ms keep the job RUNNING past the studio's 250 ms progress throttle, so that phase is stored
    // before complete; the file server holds the downloads until the watch has seen DOWNLOADING.
    setMode(sdCtl, { FAKE_SD_MODE: "ok", FAKE_SD_STEP_MS: "250" });
    const downloadSeen = Promise.withResolvers<void>();
    files.hold = () => downloadSeen.promise;
    const phases: JobPhase[] = [];
    let done: Job;
    try {
      const job = await createJob("e2e-image", imageTask("a lighthouse at dusk", 42n));
      done = await watchJob(jobs, job.id, {
        seen: (j) => {
          const phase = j.progress?.phase;
          if (phase === undefined || phase === phases.at(-1)) return;
          phases.push(phase);
          if (phase === JobPhase.DOWNLOADING) downloadSeen.resolve();
        },
      });
    } finally {
      files.hold = undefined;
      downloadSeen.resolve();
    }
    const job = done;
    expect(done.error).toBe("");
    expect(done.status).toBe(JobStatus.SUCCEEDED);
    expect(phases).toContain(JobPhase.DOWNLOADING);
    expect(phases).toContain(JobPhase.RUNNING);
    expect(phases.indexOf(JobPhase.DOWNLOADING)).toBeLessThan(phases.indexOf(JobPhase.RUNNING));

    for (const name of Object.keys(FILES)) {
      expect(files.gets.get(`/${name}`)).toBe(1);
      const blob = join(dir, "cache", "blobs", "sha256", sha256Hex(FILES[name as keyof typeof FILES]));
      expect(readFileSync(blob)).toEqual(Buffer.from(FILES[name as keyof typeof FILES]));
    }

    const argv: string[] = JSON.parse(readFileSync(join(dir, "sd.argv"), "utf8"));
    const out = argv[argv.indexOf("-o") + 1]!;
    const workDir = out.slice(0, -"/out.png".length);
    expect(workDir.startsWith(join(dir, "work", "job-"))).toBe(true);
    expect(argv).toEqual([
      "--diffusion-model", `${workDir}/models/z-image.gguf`,
      "--llm", `${workDir}/models/qwen3-4b.gguf`,
      "--vae", `${workDir}/models/ae.safetensors`,
      "--lora-model-dir", `${workDir}/loras`,
      "-p", "a lighthouse at dusk <lora:style.safetensors:1>",
      "-s", "42",
      "-b", "1",
      "--cfg-scale", "1",
      "--steps", "4",
      "-W", "64",
      "-H", "64",
      "--sampling-method", "euler",
      "-o", `${workDir}/out.png`,
    ]);
    await a.waitForLine((l) => l.msg === "job ended" && l.jobId === job.id);
    expect(existsSync(workDir)).toBe(false);

    expect(done.outputs.map((o) => o.mimeType)).toEqual(["image/png"]);
    const png = await readOutput(jobs, job.id, 0);
    const expected = fakeSdImage({ prompt: "a lighthouse at dusk <lora:style.safetensors:1>", seed: "42", width: 64, height: 64, index: 0 });
    expect(png.mimeType).toBe("image/png");
    expect(png.data).toEqual(Buffer.from(expected));

    const { workers } = await t.client(WorkerService).listWorkers({});
    const me = workers.find((w) => w.name === "e2e-a")!;
    expect(me.cachedSha256).toContain(sha256Hex(FILES["z-image.gguf"]));
  }, TEST_TIMEOUT_MS);

  test("a synthetic-capable worker never answers an sd-cpp job with synthetic bytes", async () => {
    setMode(sdCtl, { FAKE_SD_MODE: "ok" });
    const job = await createJob("e2e-image", imageTask("two boats", 7n, 2));
    const done = await watchJob(jobs, job.id);
    expect(done.status).toBe(JobStatus.SUCCEEDED);
    for (const index of [0, 1]) {
      const { data } = await readOutput(jobs, job.id, index);
      expect(data).toEqual(Buffer.from(fakeSdImage({ prompt: "two boats <lora:style.safetensors:1>", seed: "7", width: 64, height: 64, index })));
      const synthetic = syntheticImage(imageTask("two boats", 7n, 2).kind.value as ImageTask, { width: 64, height: 64 }, index);
      expect(data.equals(Buffer.from(synthetic))).toBe(false);
    }
  }, TEST_TIMEOUT_MS);

  test("cancel stops a running sd-cli job: CANCELLED, the process group is gone", async () => {
    setMode(sdCtl, { FAKE_SD_MODE: "hang" });
    rmSync(join(dir, "sd-child.pid"), { force: true });
    const job = await createJob("e2e-image", imageTask("never finishes", 3n));
    await watchJob(jobs, job.id, { until: (j) => j.progress?.phase === JobPhase.RUNNING && j.progress.step >= 2 });
    const sdPid = recordedPids(sdPids).at(-1)!;
    await jobs.cancelJob({ jobId: job.id });
    const done = await watchJob(jobs, job.id);
    expect(done.status).toBe(JobStatus.CANCELLED);
    await a.waitForLine((l) => l.msg === "job ended" && l.jobId === job.id);
    expect(alive(sdPid)).toBe(false);
    const grandchild = Number(readFileSync(join(dir, "sd-child.pid"), "utf8"));
    expect(alive(grandchild)).toBe(false);
  }, TEST_TIMEOUT_MS);

  test("a legacy job without a model source fails with the registry message", async () => {
    const now = Date.now();
    sqliteOf(t.studio).run(
      `INSERT INTO graphicsJobs (id, model, status, task, createdAt, updatedAt) VALUES ('legacy-e2e', 'old-model', 'QUEUED', ?, ?, ?)`,
      [JSON.stringify({ image: { prompt: "old" } }), now, now],
    );
    // Raw SQL bypasses the job events that wake the dispatcher; wake it as a write through the API would.
    const dispatch = t.studio.modules.find((m) => m.name === "dispatch") as unknown as { dispatcher: { wake(): void } };
    dispatch.dispatcher.wake();
    const done = await watchJob(jobs, "legacy-e2e");
    expect(done.status).toBe(JobStatus.FAILED);
    expect(done.error).toContain(`the studio's registry has no model source for model "old-model"`);
  }, TEST_TIMEOUT_MS);

  test("a second signal stops at once: exit 130, the job's process group is killed", async () => {
    // Worker a first stops cleanly (its own drain is covered against the real sd-cli), so c takes the job.
    a.proc.kill("SIGTERM");
    expect(await a.exited).toBe(0);
    const c = new WorkerProcess(
      workerArgs("e2e-c", ["--engines", "sd-cpp", "--drain-grace-seconds", "600"]),
      { FAKE_SD_CHILD_PID_FILE: join(dir, "sd-child-c.pid") },
    );
    try {
      await c.waitForLine((l) => l.msg === "connected to the studio");
      setMode(sdCtl, { FAKE_SD_MODE: "hang" });
      const job = await createJob("e2e-image", imageTask("interrupted", 11n), 3);
      await watchJob(jobs, job.id, { until: (j) => j.progress?.phase === JobPhase.RUNNING && j.progress.step >= 2 });
      c.proc.kill("SIGTERM");
      await c.waitForLine((l) => l.msg === "draining: no new jobs");
      c.proc.kill("SIGTERM");
      expect(await c.exited).toBe(130);
      for (const pid of recordedPids(sdPids)) expect(alive(pid)).toBe(false);
      expect(alive(Number(readFileSync(join(dir, "sd-child-c.pid"), "utf8")))).toBe(false);
      expect(c.lines.some((l) => l.msg === "stopping at once")).toBe(true);
      // Its lease would expire and requeue it; cancel it so that the next test starts clean.
      await jobs.cancelJob({ jobId: job.id });
    } finally {
      c.proc.kill("SIGKILL");
      await c.exited;
    }
  }, TEST_TIMEOUT_MS);
});
