import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@connectrpc/connect";
import { JobPhase, JobStatus, type Task } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { realEngines, type RealEngines } from "../helpers/real-engines.js";
import { startModelServer, type ModelServer } from "../helpers/model-server.js";
import { WorkerProcess, buildWorkerBinary, readOutput, removeWorkerBinary } from "./worker-harness.js";
import {
  followJob,
  groupAlive,
  groupGone,
  imageTask,
  llamaSource,
  loggedEnginePid,
  pngPixels,
  pngSize,
  registerModels,
  textTask,
  zimageSource,
} from "./real-engines-harness.js";

/**
 * The compiled worker binary against a real studio, running the real sd-cli and llama-server
 * (STUDIO_TEST_ENGINES) on the tiny models, which a local HTTP server serves with their sha256.
 * Each group starts its own worker, so one worker at a time takes the jobs.
 */
const engines = realEngines();
const TEST_TIMEOUT_MS = 60_000;
const HOOK_TIMEOUT_MS = 120_000;

let t: TestStudio;
let files: ModelServer;
let dir: string;
let jobs: Client<typeof JobService>;

function startWorker(e: RealEngines, name: string, extra: string[] = []): WorkerProcess {
  return new WorkerProcess([
    "--server", t.url,
    "--name", name,
    "--cache-dir", join(dir, "cache"),
    "--work-dir", join(dir, `work-${name}`),
    "--sd-cli", e.sdCli,
    "--llama-server", e.llamaServer,
    "--engines", "sd-cpp,llama-cpp",
    "--progress", "log",
    "--job-timeout", "120",
    "--drain-grace-seconds", "30",
    ...extra,
  ]);
}

async function stopWorker(w: WorkerProcess | undefined) {
  if (!w) return;
  w.proc.kill("SIGTERM");
  const timer = setTimeout(() => w.proc.kill("SIGKILL"), 20_000);
  await w.exited;
  clearTimeout(timer);
}

async function create(model: string, task: Task, maxAttempts = 1) {
  return (await jobs.createJob({ model, task, maxAttempts })).job!;
}

async function textOf(jobId: string) {
  const out = await readOutput(jobs, jobId, 0);
  expect(out.mimeType).toBe("application/json");
  return JSON.parse(out.data.toString()) as { text: string; reasoning?: string; finishReason: string; usage: { promptTokens: number; completionTokens: number } };
}

describe.skipIf(!engines)("the compiled worker with the real sd-cli and llama-server", () => {
  const e = engines!;

  beforeAll(async () => {
    buildWorkerBinary();
    dir = mkdtempSync(join(tmpdir(), "real-engines-e2e-"));
    t = await startTestStudio({ heartbeatIntervalMs: 500, leaseTtlMs: 10_000 });
    jobs = t.client(JobService);
    files = startModelServer(
      (["tiny-zimage-dit.gguf", "tiny-zimage-dit-truncated.gguf", "tiny-zimage-qwen3.gguf", "tiny-zimage-vae.safetensors",
        "tiny-zimage-lora.safetensors", "tiny-zimage-lora-broken.safetensors",
        "tiny-llama.gguf", "tiny-llama-r1.gguf", "tiny-llama-long.gguf", "tiny-llama-raw-bytes.gguf", "tiny-llama-truncated.gguf"] as const).map((n) => e.model(n)),
    );
    await registerModels(t.client(RegistryService), {
      "tiny-zimage": zimageSource(e, files),
      "tiny-zimage-broken": zimageSource(e, files, "tiny-zimage-dit-truncated.gguf"),
      "tiny-zimage-lora": zimageSource(e, files, "tiny-zimage-dit.gguf", [{ model: "tiny-zimage-lora.safetensors", filename: "style.safetensors" }]),
      "tiny-zimage-lora-off": zimageSource(e, files, "tiny-zimage-dit.gguf", [{ model: "tiny-zimage-lora.safetensors", filename: "style.safetensors", loraWeight: 0 }]),
      "tiny-zimage-lora-broken": zimageSource(e, files, "tiny-zimage-dit.gguf", [{ model: "tiny-zimage-lora-broken.safetensors", filename: "broken.safetensors" }]),
      "tiny-llama": llamaSource(e, files, "tiny-llama.gguf"),
      "tiny-llama-r1": llamaSource(e, files, "tiny-llama-r1.gguf"),
      "tiny-llama-long": llamaSource(e, files, "tiny-llama-long.gguf"),
      "tiny-llama-raw-bytes": llamaSource(e, files, "tiny-llama-raw-bytes.gguf"),
      "tiny-llama-broken": llamaSource(e, files, "tiny-llama-truncated.gguf"),
    });
  }, HOOK_TIMEOUT_MS);

  afterAll(async () => {
    await t?.stop();
    files?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    removeWorkerBinary();
  }, HOOK_TIMEOUT_MS);

  describe("images (sd-cli)", () => {
    let w: WorkerProcess;
    beforeAll(async () => {
      w = startWorker(e, "real-sd");
      await w.waitForLine((l) => l.msg === "connected to the studio");
    }, HOOK_TIMEOUT_MS);
    afterAll(() => stopWorker(w), HOOK_TIMEOUT_MS);

    test("a batch of 2: files downloaded once and verified, two distinct 64x64 PNGs, phases in order", async () => {
      const job = await create("tiny-zimage", imageTask("a red fox", { seed: 7n, batchCount: 2 }));
      const { job: done, phases, progress } = await followJob(jobs, job.id);
      expect(done.error).toBe("");
      expect(done.status).toBe(JobStatus.SUCCEEDED);
      // The studio stores progress at most every 250 ms per job (the first report at once), so a
      // 2-step job may show no RUNNING at all; the engine tests see every update.
      expect(phases[0]).toBe(JobPhase.DOWNLOADING);
      expect(phases.length).toBeGreaterThanOrEqual(2);
      expect(progress.every((p) => p.phase !== JobPhase.RUNNING || p.steps === 0 || p.steps === 2)).toBe(true);
      expect(done.outputs.map((o) => o.mimeType)).toEqual(["image/png", "image/png"]);
      // The studio reports each image's real size, read from the image.
      expect(done.outputs.map((o) => [o.width, o.height])).toEqual([[64, 64], [64, 64]]);
      const a = await readOutput(jobs, job.id, 0);
      const b = await readOutput(jobs, job.id, 1);
      expect(pngSize(a.data)).toEqual({ width: 64, height: 64 });
      expect(pngSize(b.data)).toEqual({ width: 64, height: 64 });
      expect(a.data.equals(b.data)).toBe(false);
      const downloaded = w.lines.filter((l) => l.msg === "download complete").map((l) => [l.filename, l.verified]);
      expect(downloaded.sort()).toEqual([["tiny-zimage-dit.gguf", true], ["tiny-zimage-qwen3.gguf", true], ["tiny-zimage-vae.safetensors", true]]);
      expect(w.lines.filter((l) => String(l.msg).startsWith("download retry"))).toEqual([]);
    }, TEST_TIMEOUT_MS);

    test("the same seed gives the same image; the files come from the cache", async () => {
      const gets = JSON.stringify([...files.gets].sort());
      const first = await create("tiny-zimage", imageTask("a lighthouse", { seed: 11n }));
      expect((await followJob(jobs, first.id)).job.status).toBe(JobStatus.SUCCEEDED);
      const second = await create("tiny-zimage", imageTask("a lighthouse", { seed: 11n }));
      expect((await followJob(jobs, second.id)).job.status).toBe(JobStatus.SUCCEEDED);
      const [x, y] = [await readOutput(jobs, first.id, 0), await readOutput(jobs, second.id, 0)];
      expect(x.data.equals(y.data)).toBe(true);
      expect(JSON.stringify([...files.gets].sort())).toBe(gets);
    }, TEST_TIMEOUT_MS);

    test("cancel mid-generation: CANCELLED, sd-cli and its process group are gone", async () => {
      const job = await create("tiny-zimage", imageTask("never finishes", { steps: 500 }));
      const started = loggedEnginePid(w, "sd-cli started", (l) => l.jobId === job.id);
      await followJob(jobs, job.id, (j) => j.progress?.phase === JobPhase.RUNNING && j.progress.step >= 1);
      const { pid } = await started;
      expect(groupAlive(pid)).toBe(true);
      await jobs.cancelJob({ jobId: job.id });
      expect((await followJob(jobs, job.id)).job.status).toBe(JobStatus.CANCELLED);
      await w.waitForLine((l) => l.msg === "job ended" && l.jobId === job.id);
      expect(await groupGone(pid)).toBe(true);
    }, TEST_TIMEOUT_MS);

    test("sd-cli killed mid-job: the job fails naming the signal, and the next job runs", async () => {
      const job = await create("tiny-zimage", imageTask("killed", { steps: 500 }));
      const started = loggedEnginePid(w, "sd-cli started", (l) => l.jobId === job.id);
      await followJob(jobs, job.id, (j) => j.progress?.phase === JobPhase.RUNNING && j.progress.step >= 1);
      process.kill((await started).pid, "SIGKILL");
      const { job: done } = await followJob(jobs, job.id);
      expect(done.status).toBe(JobStatus.FAILED);
      expect(done.error).toContain("sd-cli was killed by SIGKILL");
      expect(done.outputs).toEqual([]);
      const next = await create("tiny-zimage", imageTask("after the crash", { seed: 3n }));
      expect((await followJob(jobs, next.id)).job.status).toBe(JobStatus.SUCCEEDED);
    }, TEST_TIMEOUT_MS);

    test("a model sd-cli cannot load fails the job, naming the model and its file", async () => {
      const job = await create("tiny-zimage-broken", imageTask("broken"));
      const { job: done } = await followJob(jobs, job.id);
      expect(done.status).toBe(JobStatus.FAILED);
      expect(done.error).toStartWith(`sd-cli could not load the diffusion-model file tiny-zimage-dit-truncated.gguf of model "tiny-zimage-broken" (read tensor data failed)`);
    }, TEST_TIMEOUT_MS);

    test("the source's LoRA is applied with its weight; a prompt tag's weight replaces it; weight 0 leaves it off", async () => {
      const pixels = async (model: string, prompt: string) => {
        const job = await create(model, imageTask(prompt, { seed: 5n }));
        const { job: done } = await followJob(jobs, job.id);
        expect(done.error).toBe("");
        expect(done.status).toBe(JobStatus.SUCCEEDED);
        return pngPixels((await readOutput(jobs, job.id, 0)).data);
      };
      const plain = await pixels("tiny-zimage", "a fox");
      const withLora = await pixels("tiny-zimage-lora", "a fox");
      const half = await pixels("tiny-zimage-lora", "a fox <lora:style:0.5>");
      const off = await pixels("tiny-zimage-lora-off", "a fox");
      const optedIn = await pixels("tiny-zimage-lora-off", "a fox <lora:style.safetensors:1>");
      expect(withLora.equals(plain)).toBe(false);
      expect(half.equals(withLora)).toBe(false);
      expect(half.equals(plain)).toBe(false);
      expect(off.equals(plain)).toBe(true);
      expect(optedIn.equals(withLora)).toBe(true);
      expect(w.lines.some((l) => l.msg === "job ended")).toBe(true);
    }, TEST_TIMEOUT_MS);

    test("a LoRA sd-cli cannot load fails the job (sd-cli itself would go on and exit 0)", async () => {
      const job = await create("tiny-zimage-lora-broken", imageTask("a fox"));
      const { job: done } = await followJob(jobs, job.id);
      expect(done.status).toBe(JobStatus.FAILED);
      expect(done.error).toContain(`sd-cli could not load the LoRA file broken.safetensors of model "tiny-zimage-lora-broken"`);
      expect(done.outputs).toEqual([]);
    }, TEST_TIMEOUT_MS);

    test("a prompt or negative prompt naming any other LoRA is refused before it reaches sd-cli", async () => {
      for (const task of [imageTask("a fox <lora:../../x:1>"), imageTask("a fox", { negativePrompt: "<lora:../../x:1>" }), imageTask("a fox <lora:/etc/passwd:1>")]) {
        const refused = await jobs.createJob({ model: "tiny-zimage-lora", task }).then(
          () => undefined,
          (err: Error) => err.message,
        );
        expect(refused).toStartWith("[invalid_argument] task.image.");
        expect(refused).toContain("lora");
      }
    }, TEST_TIMEOUT_MS);
  });

  describe("images: job timeout and drain (a worker each)", () => {
    test("a job timeout kills sd-cli and its group and fails the job", async () => {
      const w = startWorker(e, "real-timeout", ["--job-timeout", "1"]);
      try {
        await w.waitForLine((l) => l.msg === "connected to the studio");
        const job = await create("tiny-zimage", imageTask("too slow", { steps: 500 }));
        const started = loggedEnginePid(w, "sd-cli started", (l) => l.jobId === job.id);
        const { job: done } = await followJob(jobs, job.id);
        expect(done.status).toBe(JobStatus.FAILED);
        expect(done.error).toContain("sd-cli ran past the job timeout of 1000 ms and was killed");
        expect(await groupGone((await started).pid)).toBe(true);
      } finally {
        await stopWorker(w);
      }
    }, TEST_TIMEOUT_MS);

    test("SIGTERM drains: the running sd-cli job finishes, the worker exits 0, no engine process is left", async () => {
      const w = startWorker(e, "real-drain");
      try {
        await w.waitForLine((l) => l.msg === "connected to the studio");
        const job = await create("tiny-zimage", imageTask("the last one", { steps: 6 }));
        const started = loggedEnginePid(w, "sd-cli started", (l) => l.jobId === job.id);
        await followJob(jobs, job.id, (j) => j.progress?.phase === JobPhase.RUNNING || j.progress?.phase === JobPhase.LOADING);
        const { pid } = await started;
        w.proc.kill("SIGTERM");
        const { job: done } = await followJob(jobs, job.id);
        expect(done.error).toBe("");
        expect(done.status).toBe(JobStatus.SUCCEEDED);
        expect(await w.exited).toBe(0);
        expect(w.lines.some((l) => l.msg === "draining: no new jobs")).toBe(true);
        expect(groupAlive(pid)).toBe(false);
      } finally {
        await stopWorker(w);
      }
    }, TEST_TIMEOUT_MS);
  });

  describe("text (llama-server)", () => {
    let w: WorkerProcess;
    beforeAll(async () => {
      w = startWorker(e, "real-llama", ["--llama-idle-seconds", "600"]);
      await w.waitForLine((l) => l.msg === "connected to the studio");
    }, HOOK_TIMEOUT_MS);
    afterAll(() => stopWorker(w), HOOK_TIMEOUT_MS);

    test("a prompt (/completion): text and usage; the same seed gives the same text from the warm server", async () => {
      const job = await create("tiny-llama", textTask({ prompt: "hello", maxTokens: 24, seed: 5n }));
      const { job: done } = await followJob(jobs, job.id);
      expect(done.error).toBe("");
      expect(done.status).toBe(JobStatus.SUCCEEDED);
      const out = await textOf(job.id);
      expect(out.text.length).toBeGreaterThan(0);
      expect(out.finishReason).toBe("length");
      expect(out.usage.completionTokens).toBe(24);
      expect(out.reasoning).toBeUndefined();

      const again = await create("tiny-llama", textTask({ prompt: "hello", maxTokens: 24, seed: 5n }));
      expect((await followJob(jobs, again.id)).job.status).toBe(JobStatus.SUCCEEDED);
      expect((await textOf(again.id)).text).toBe(out.text);
      expect(w.lines.filter((l) => l.msg === "llama-server started").length).toBe(1);
    }, TEST_TIMEOUT_MS);

    test("chat messages (/v1/chat/completions): a reply with usage", async () => {
      const job = await create("tiny-llama", textTask({ messages: [{ role: "user", content: "hi there" }], maxTokens: 16, seed: 9n }));
      const { job: done } = await followJob(jobs, job.id);
      expect(done.error).toBe("");
      expect(done.status).toBe(JobStatus.SUCCEEDED);
      const out = await textOf(job.id);
      expect(out.text.length).toBeGreaterThan(0);
      expect(out.usage.completionTokens).toBe(16);
      expect(out.usage.promptTokens).toBeGreaterThan(0);
    }, TEST_TIMEOUT_MS);

    test("a thinking model's reasoning is kept apart from its answer; thinking off makes it answer", async () => {
      const messages = [{ role: "user", content: "why is the sky blue?" }];
      const job = await create("tiny-llama-r1", textTask({ messages, maxTokens: 40, seed: 3n }));
      const { job: done } = await followJob(jobs, job.id);
      expect(done.error).toBe("");
      expect(done.status).toBe(JobStatus.SUCCEEDED);
      const thought = await textOf(job.id);
      // The tiny R1-template model reasons for all 40 tokens: before, the job "succeeded" with {"text": ""}.
      expect(thought.reasoning!.length).toBeGreaterThan(0);
      expect(thought.usage.completionTokens).toBe(40);

      const off = await create("tiny-llama-r1", textTask({ messages, maxTokens: 40, seed: 3n, thinking: false }));
      expect((await followJob(jobs, off.id)).job.status).toBe(JobStatus.SUCCEEDED);
      const answered = await textOf(off.id);
      expect(answered.reasoning).toBeUndefined();
      expect(answered.text.length).toBeGreaterThan(0);
      expect(answered.usage.completionTokens).toBe(40);
    }, TEST_TIMEOUT_MS);

    test("text seeds: past llama-server's 32 bits is refused; the largest it keeps is deterministic", async () => {
      const refused = await jobs.createJob({ model: "tiny-llama", task: textTask({ prompt: "hello", maxTokens: 8, seed: 4_294_967_301n }) }).then(
        () => "created",
        (err: Error) => err.message,
      );
      expect(refused).toBe("[invalid_argument] task.text.seed: must be from 0 to 4294967294 (got 4294967301)");
      const texts: string[] = [];
      for (let i = 0; i < 2; i++) {
        const job = await create("tiny-llama", textTask({ prompt: "hello", maxTokens: 16, seed: 4_294_967_294n }));
        expect((await followJob(jobs, job.id)).job.status).toBe(JobStatus.SUCCEEDED);
        texts.push((await textOf(job.id)).text);
      }
      expect(texts[0]).toBe(texts[1]!);
    }, TEST_TIMEOUT_MS);

    test("cancel mid-generation: CANCELLED, the server stops generating and serves the next job", async () => {
      const job = await create("tiny-llama-long", textTask({ prompt: "go on", maxTokens: 30_000 }));
      const started = loggedEnginePid(w, "llama-server started", (l) => String(l.model).includes(e.model("tiny-llama-long.gguf").sha256));
      await followJob(jobs, job.id, (j) => j.progress?.phase === JobPhase.RUNNING && j.progress.step >= 5);
      const { pid, port } = await started;
      await jobs.cancelJob({ jobId: job.id });
      expect((await followJob(jobs, job.id)).job.status).toBe(JobStatus.CANCELLED);
      // llama-server notices the closed connection and frees the slot: no slot is left processing.
      let busy = true;
      for (let i = 0; i < 200 && busy; i++) {
        const slots = (await (await fetch(`http://127.0.0.1:${port}/slots`)).json()) as Array<{ is_processing: boolean }>;
        busy = slots.some((s) => s.is_processing);
        if (busy) await Bun.sleep(25);
      }
      expect(busy).toBe(false);
      expect(groupAlive(pid)).toBe(true);
      const next = await create("tiny-llama-long", textTask({ prompt: "short", maxTokens: 4 }));
      expect((await followJob(jobs, next.id)).job.status).toBe(JobStatus.SUCCEEDED);
      expect(w.lines.filter((l) => l.msg === "llama-server started" && l.pid === pid).length).toBe(1);
    }, TEST_TIMEOUT_MS);

    test("llama-server killed mid-job: the job fails as a crash, the next job starts a new server", async () => {
      const job = await create("tiny-llama-long", textTask({ prompt: "keep going", maxTokens: 30_000 }));
      await followJob(jobs, job.id, (j) => j.progress?.phase === JobPhase.RUNNING && j.progress.step >= 5);
      const servers = w.lines.filter((l) => l.msg === "llama-server started" && String(l.model).includes(e.model("tiny-llama-long.gguf").sha256));
      const pid = Number(servers.at(-1)!.pid);
      process.kill(pid, "SIGKILL");
      const { job: done } = await followJob(jobs, job.id);
      expect(done.status).toBe(JobStatus.FAILED);
      expect(done.error).toContain("exited during the job");
      expect(await groupGone(pid)).toBe(true);
      const next = await create("tiny-llama-long", textTask({ prompt: "again", maxTokens: 4 }));
      expect((await followJob(jobs, next.id)).job.status).toBe(JobStatus.SUCCEEDED);
      const after = w.lines.filter((l) => l.msg === "llama-server started" && String(l.model).includes(e.model("tiny-llama-long.gguf").sha256));
      expect(after.length).toBe(servers.length + 1);
    }, TEST_TIMEOUT_MS);

    test("a model llama-server cannot load fails the job, naming the model and its file", async () => {
      const job = await create("tiny-llama-broken", textTask({ prompt: "x", maxTokens: 4 }));
      const { job: done } = await followJob(jobs, job.id);
      expect(done.status).toBe(JobStatus.FAILED);
      expect(done.error).toContain("tiny-llama-broken");
      expect(done.error).toContain("tiny-llama-truncated.gguf");
      expect(done.error).not.toContain(e.model("tiny-llama-truncated.gguf").sha256);
    }, TEST_TIMEOUT_MS);

    test("an engine error mid-stream fails the job with llama-server's message", async () => {
      const job = await create("tiny-llama-raw-bytes", textTask({ messages: [{ role: "user", content: "hi" }], maxTokens: 200, seed: 1n }));
      const { job: done } = await followJob(jobs, job.id);
      expect(done.status).toBe(JobStatus.FAILED);
      expect(done.error).toContain("mid-stream");
      expect(done.error).toContain("does not match the expected peg-native format");
    }, TEST_TIMEOUT_MS);
  });

  describe("warm llama-server idle stop", () => {
    test("a warm server stops after --llama-idle-seconds without work; its record goes with it", async () => {
      const w = startWorker(e, "real-idle", ["--llama-idle-seconds", "1"]);
      try {
        await w.waitForLine((l) => l.msg === "connected to the studio");
        const job = await create("tiny-llama", textTask({ prompt: "hi", maxTokens: 4 }));
        expect((await followJob(jobs, job.id)).job.status).toBe(JobStatus.SUCCEEDED);
        const { pid } = await loggedEnginePid(w, "llama-server started");
        await w.waitForLine((l) => l.msg === "llama-server idle; stopping");
        await w.waitForLine((l) => l.msg === "llama-server exited" && l.pid === pid);
        expect(await groupGone(pid)).toBe(true);
        expect(readdirSync(join(dir, "work-real-idle")).filter((n) => n.startsWith("llama-"))).toEqual([]);
      } finally {
        await stopWorker(w);
      }
    }, TEST_TIMEOUT_MS);

    test("a clean SIGTERM stops the warm server and removes its llama-<pgid>.json record", async () => {
      const w = startWorker(e, "real-term", ["--llama-idle-seconds", "600"]);
      try {
        await w.waitForLine((l) => l.msg === "connected to the studio");
        const job = await create("tiny-llama", textTask({ prompt: "hi", maxTokens: 4 }));
        expect((await followJob(jobs, job.id)).job.status).toBe(JobStatus.SUCCEEDED);
        const { pid } = await loggedEnginePid(w, "llama-server started");
        expect(readdirSync(join(dir, "work-real-term"))).toContain(`llama-${pid}.json`);
        w.proc.kill("SIGTERM");
        expect(await w.exited).toBe(0);
        expect(groupAlive(pid)).toBe(false);
        expect(readdirSync(join(dir, "work-real-term")).filter((n) => n.startsWith("llama-"))).toEqual([]);
      } finally {
        await stopWorker(w);
      }
    }, TEST_TIMEOUT_MS);
  });
});
