import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { JobStatus } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelSourceSchema } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { WorkerService, type WorkerInfo } from "../../gen/studio/v1/worker_service_pb.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { realEngines, type RealEngines } from "../helpers/real-engines.js";
import { startModelServer, type ModelServer } from "../helpers/model-server.js";
import { FAKE_NVIDIA_SMI, fakeGpus, nvidiaCard } from "../worker/gpus/fake-gpus.js";
import { dispatchOf, rowOf } from "../dispatch/fixtures.js";
import { WorkerProcess, alive, buildWorkerBinary, removeWorkerBinary, watchJob } from "./worker-harness.js";
import { imageTask, llamaSource, textTask, zimageSource } from "./real-engines-harness.js";

/**
 * The compiled worker on a machine whose GPUs a stand-in nvidia-smi describes, running the real
 * sd-cli and llama-server (CPU builds: they run, and ignore the GPU they are pinned to). Each engine
 * program is started through a wrapper that records the environment and argv it got, then execs the
 * real one (same pid), so the tests read what each engine process really received. The stand-in's
 * memory figures follow the processes pinned to each card, as a driver's would.
 */
const engines = realEngines();
const TEST_TIMEOUT_MS = 60_000;
const HOOK_TIMEOUT_MS = 120_000;
const MiB = 1024 ** 2;

let t: TestStudio;
let files: ModelServer;
let dir: string;
let jobs: Client<typeof JobService>;
const cleanups: Array<() => void | Promise<void>> = [];

/** A wrapper that records each run's environment and argv under `records`, then execs `real`. */
function recorder(name: string, real: string, records: string): string {
  mkdirSync(records, { recursive: true });
  const path = join(dir, `bin-${Math.random().toString(36).slice(2)}`, name);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, `#!/bin/sh\nenv > '${records}'/$$.env\nprintf '%s\\n' "$@" > '${records}'/$$.args\nexec '${real}' "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

/** What the wrapper recorded for each process it started: pid, environment, argv. */
function recorded(records: string) {
  if (!existsSync(records)) return [];
  return readdirSync(records)
    .filter((f) => f.endsWith(".env"))
    .map((f) => {
      const pid = Number(f.slice(0, -4));
      const env = Object.fromEntries(
        readFileSync(join(records, f), "utf8")
          .split("\n")
          .filter((l) => l.includes("="))
          .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
      );
      const args = existsSync(join(records, `${pid}.args`)) ? readFileSync(join(records, `${pid}.args`), "utf8").split("\n").slice(0, -1) : [];
      return { pid, env, args };
    });
}

function startWorker(e: RealEngines, name: string, gpuState: string, extra: string[] = []) {
  const records = { sd: join(dir, name, "sd"), llama: join(dir, name, "llama") };
  const w = new WorkerProcess(
    [
      "--server", t.url,
      "--name", name,
      "--cache-dir", join(dir, "cache"),
      "--work-dir", join(dir, `work-${name}`),
      "--sd-cli", recorder("sd-cli", e.sdCli, records.sd),
      "--llama-server", recorder("llama-server", e.llamaServer, records.llama),
      "--engines", "sd-cpp,llama-cpp",
      "--nvidia-smi", FAKE_NVIDIA_SMI,
      "--gpu-poll-seconds", "1",
      "--llama-idle-seconds", "600",
      "--progress", "log",
      "--job-timeout", "120",
      "--drain-grace-seconds", "30",
      ...extra,
    ],
    { FAKE_GPU_STATE: gpuState },
  );
  cleanups.push(async () => {
    w.proc.kill("SIGTERM");
    const timer = setTimeout(() => w.proc.kill("SIGKILL"), 20_000);
    await w.exited;
    clearTimeout(timer);
  });
  return { w, records };
}

/** Follows WatchWorkers until a worker of that name satisfies `until`. */
async function workerWhen(name: string, until: (w: WorkerInfo) => boolean): Promise<WorkerInfo> {
  const abort = new AbortController();
  const known = new Map<string, WorkerInfo>();
  try {
    for await (const res of t.client(WorkerService).watchWorkers({}, { signal: abort.signal })) {
      if (res.snapshot) known.clear();
      for (const w of res.workers) known.set(w.workerId, w);
      for (const id of res.removedWorkerIds) known.delete(id);
      const hit = [...known.values()].find((w) => w.name === name && until(w));
      if (hit) return hit;
    }
  } finally {
    abort.abort();
  }
  throw new Error("WatchWorkers ended");
}

const llamaWithVram = (e: RealEngines, model: Parameters<typeof llamaSource>[2], vramMiB: number) =>
  create(ModelSourceSchema, { ...llamaSource(e, files, model), vramBytes: BigInt(vramMiB * MiB) });

describe.skipIf(!engines)("the compiled worker on GPUs (a stand-in nvidia-smi) with the real engines", () => {
  const e = engines!;

  beforeAll(async () => {
    buildWorkerBinary();
    dir = mkdtempSync(join(tmpdir(), "gpu-worker-e2e-"));
    t = await startTestStudio({ heartbeatIntervalMs: 500, leaseTtlMs: 10_000 });
    jobs = t.client(JobService);
    files = startModelServer(
      (["tiny-zimage-dit.gguf", "tiny-zimage-qwen3.gguf", "tiny-zimage-vae.safetensors", "tiny-llama.gguf", "tiny-llama-r1.gguf"] as const).map((n) =>
        e.model(n),
      ),
    );
    const registry = t.client(RegistryService);
    await registry.createModel({ name: "tiny-zimage", source: zimageSource(e, files) });
    await registry.createModel({ name: "tiny-llama", source: llamaSource(e, files, "tiny-llama.gguf") });
    await registry.createModel({ name: "llama-a", source: llamaWithVram(e, "tiny-llama.gguf", 600) });
    await registry.createModel({ name: "llama-b", source: llamaWithVram(e, "tiny-llama-r1.gguf", 600) });
    await registry.createModel({ name: "llama-huge", source: llamaWithVram(e, "tiny-llama.gguf", 4000) });
  }, HOOK_TIMEOUT_MS);

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  }, HOOK_TIMEOUT_MS);

  afterAll(async () => {
    await t?.stop();
    files?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    removeWorkerBinary();
  }, HOOK_TIMEOUT_MS);

  test("one slot per GPU; each engine process is pinned to its slot's GPU; llama-server offloads every layer; the GPUs reach ListWorkers", async () => {
    const cards = [nvidiaCard("NVIDIA GeForce RTX 4090", 24564, 312), nvidiaCard("NVIDIA GeForce RTX 3060", 12288, 0)];
    const gpus = fakeGpus({ cards, usage: [{ match: "llama-server", mib: 700 }, { match: "sd-cli", mib: 300 }] });
    cleanups.push(gpus.cleanup);
    const { w, records } = startWorker(e, "two-gpus", gpus.path);
    await w.waitForLine((l) => l.msg === "connected to the studio");
    const started = w.lines.find((l) => String(l.msg).startsWith("running on 2 NVIDIA GPUs"));
    expect(started).toBeDefined();

    const listed = (await t.client(WorkerService).listWorkers({})).workers.find((x) => x.name === "two-gpus")!;
    expect(listed.slots).toBe(2);
    expect(listed.gpus.map((g) => [g.index, g.uuid, g.name, Number(g.totalMemoryBytes) / MiB, Number(g.freeMemoryBytes) / MiB, g.slots])).toEqual([
      [0, cards[0]!.uuid, "NVIDIA GeForce RTX 4090", 24564, 24564 - 312, 1],
      [1, cards[1]!.uuid, "NVIDIA GeForce RTX 3060", 12288, 12288, 1],
    ]);

    // Both at once: one slot per GPU, so they run side by side on different cards.
    const image = (await jobs.createJob({ model: "tiny-zimage", task: imageTask("a fox", { seed: 1n }), maxAttempts: 1 })).job!;
    const text = (await jobs.createJob({ model: "tiny-llama", task: textTask({ prompt: "hello", maxTokens: 8 }), maxAttempts: 1 })).job!;
    for (const id of [image.id, text.id]) {
      const done = await watchJob(jobs, id);
      expect([done.error, done.status]).toEqual(["", JobStatus.SUCCEEDED]);
    }
    const [sd] = recorded(records.sd);
    const [llama] = recorded(records.llama);
    expect(sd && llama).toBeTruthy();
    const pinned = [sd!.env.CUDA_VISIBLE_DEVICES, llama!.env.CUDA_VISIBLE_DEVICES];
    expect(pinned.sort()).toEqual(cards.map((c) => c.uuid).sort());
    expect(sd!.env.CUDA_DEVICE_ORDER).toBe("PCI_BUS_ID");
    expect(llama!.env.CUDA_DEVICE_ORDER).toBe("PCI_BUS_ID");
    const ngl = llama!.args.indexOf("-ngl");
    expect(llama!.args[ngl + 1]).toBe("all");
    const offers = w.lines.filter((l) => l.msg === "took an offer").map((l) => l.gpu);
    expect(offers.sort()).toEqual([0, 1]);

    // The warm llama-server stays on its card: the stand-in counts its 700 MiB there, and the worker
    // reports them to the studio as its own (room for its next jobs), in a GpuUpdate.
    const llamaCard = cards.findIndex((c) => c.uuid === llama!.env.CUDA_VISIBLE_DEVICES);
    expect(alive(llama!.pid)).toBe(true);
    const seen = await workerWhen("two-gpus", (x) => Number(x.gpus[llamaCard]?.workerMemoryBytes ?? 0) === 700 * MiB);
    expect(Number(seen.gpus[llamaCard]!.freeMemoryBytes)).toBe((cards[llamaCard]!.totalMiB - cards[llamaCard]!.usedMiB - 700) * MiB);
  }, TEST_TIMEOUT_MS);

  test("a model that needs room stops the least recently used idle warm server on its GPU first; one that cannot fit is never offered", async () => {
    const gpus = fakeGpus({ cards: [nvidiaCard("NVIDIA T1000 1 GB", 1000, 0)], usage: [{ match: "llama-server", mib: 600 }] });
    cleanups.push(gpus.cleanup);
    const { w, records } = startWorker(e, "one-small-gpu", gpus.path);
    await w.waitForLine((l) => l.msg === "connected to the studio");

    const a = (await jobs.createJob({ model: "llama-a", task: textTask({ prompt: "a", maxTokens: 4 }), maxAttempts: 1 })).job!;
    expect((await watchJob(jobs, a.id)).status).toBe(JobStatus.SUCCEEDED);
    const [serverA] = recorded(records.llama);
    expect(alive(serverA!.pid)).toBe(true);
    // The card shows A's 600 MiB, and the worker says they are its own: B (600 MiB) still fits.
    await workerWhen("one-small-gpu", (x) => Number(x.gpus[0]!.workerMemoryBytes) === 600 * MiB);

    const b = (await jobs.createJob({ model: "llama-b", task: textTask({ prompt: "b", maxTokens: 4 }), maxAttempts: 1 })).job!;
    const doneB = await watchJob(jobs, b.id);
    expect([doneB.error, doneB.status]).toEqual(["", JobStatus.SUCCEEDED]);
    const stopped = w.lines.find((l) => l.msg === "stopping the least recently used idle warm server on GPU 0 (NVIDIA T1000 1 GB) to make room");
    expect(stopped).toMatchObject({ jobId: b.id, gpu: 0, frees: 600 * MiB, needs: 600 * MiB });
    expect(String(stopped!.stopping)).toContain('model "llama-a"');
    expect(alive(serverA!.pid)).toBe(false);
    const servers = recorded(records.llama);
    expect(servers).toHaveLength(2);
    expect(servers.every((s) => s.env.CUDA_VISIBLE_DEVICES === gpus.state.cards[0]!.uuid)).toBe(true);

    // 4000 MiB fits on no GPU this worker has: the studio never offers it.
    const huge = (await jobs.createJob({ model: "llama-huge", task: textTask({ prompt: "c", maxTokens: 4 }), maxAttempts: 1 })).job!;
    await dispatchOf(t).dispatcher.idle();
    expect(rowOf(t, huge.id).status).toBe("QUEUED");
    expect(w.lines.some((l) => l.jobId === huge.id)).toBe(false);
    await jobs.cancelJob({ jobId: huge.id });
  }, TEST_TIMEOUT_MS);

  test("--gpus none keeps engines off every GPU; a GPU tool that hangs leaves the worker CPU-only with one warning", async () => {
    const gpus = fakeGpus({ mode: "hang", cards: [nvidiaCard("NVIDIA T4", 15360)] });
    cleanups.push(gpus.cleanup);
    const hung = startWorker(e, "hung-smi", gpus.path);
    await hung.w.waitForLine((l) => l.msg === "connected to the studio");
    const warnings = hung.w.lines.filter((l) => l.level === 40);
    expect(warnings.map((l) => l.msg)).toEqual([
      `${FAKE_NVIDIA_SMI} --query-gpu=index,uuid,name,memory.total,memory.used --format=csv,noheader,nounits gave no answer within 5000 ms (killed): running CPU-only`,
    ]);
    const info = (await t.client(WorkerService).listWorkers({})).workers.find((x) => x.name === "hung-smi")!;
    expect([info.slots, info.gpus]).toEqual([1, []]);

    const none = startWorker(e, "no-gpus", gpus.path, ["--gpus", "none"]);
    await none.w.waitForLine((l) => l.msg === "connected to the studio");
    await hung.w.proc.kill("SIGTERM");
    await hung.w.exited;
    const job = (await jobs.createJob({ model: "tiny-llama", task: textTask({ prompt: "cpu", maxTokens: 4 }), maxAttempts: 1 })).job!;
    expect((await watchJob(jobs, job.id)).status).toBe(JobStatus.SUCCEEDED);
    const [llama] = recorded(none.records.llama);
    expect([llama!.env.CUDA_VISIBLE_DEVICES, llama!.env.HIP_VISIBLE_DEVICES]).toEqual(["", ""]);
    expect(llama!.args[llama!.args.indexOf("-ngl") + 1]).toBe("0");
    expect(gpus.calls().filter((c) => c.argv.length > 0)).toHaveLength(1);
  }, TEST_TIMEOUT_MS);
});
