import { afterEach, describe, expect, test } from "bun:test";
import { realpathSync } from "node:fs";
import { ModelFileRole } from "../../../gen/studio/v1/model_pb.js";
import { GpuPool, NoRoomError, type WarmProcess } from "../../../worker/gpus/gpu-pool.js";
import { planSlots } from "../../../worker/gpus/gpu-plan.js";
import { readInventory } from "../../../worker/gpus/inventory.js";
import { LlamaServerEngine, EngineError, SdCliEngine } from "../../../worker/engines/index.js";
import type { JobGpu } from "../../../worker/engines/types.js";
import type { GpuDevice } from "../../../gen/studio/v1/worker_service_pb.js";
import { FAKE_NVIDIA_SMI, FAKE_ROCM_SMI, amdCard, fakeGpus, nvidiaCard, type FakeGpuState } from "./fake-gpus.js";
import { FAKE_LLAMA_SERVER, FAKE_SD_CLI, imageTask, llamaSource, memoryLogger, rejection, request, sdSource, textTask, workDir } from "../engines/helpers.js";

const MiB = 1024 * 1024;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  delete process.env.FAKE_GPU_STATE;
});

/** A GpuPool over the stand-in tools' cards (read as start-up reads them), its updates collected. */
async function poolFor(state: FakeGpuState, vendor: "nvidia" | "amd" = "nvidia") {
  const gpus = fakeGpus(state);
  cleanups.push(gpus.cleanup);
  process.env.FAKE_GPU_STATE = gpus.path;
  const tools = vendor === "nvidia" ? { nvidiaSmi: FAKE_NVIDIA_SMI } : { rocmSmi: FAKE_ROCM_SMI };
  const found = await readInventory(tools);
  const plan = planSlots({ kind: "all" }, found.snapshot.gpus, {});
  const updates: GpuDevice[][] = [];
  const logger = memoryLogger();
  const pool = new GpuPool({ gpus: plan.gpus, vendor, tools, pollMs: 60_000, logger, onUpdate: (d) => updates.push(d), minUpdateIntervalMs: 0 });
  pool.sentInHello(pool.devices());
  cleanups.push(() => pool.stop());
  return { gpus, pool, updates, logger };
}

/** A real process pinned to a card the way engines are (the stand-in counts what `usage` says it holds). */
function pinned(env: Record<string, string>, seconds: string) {
  const proc = Bun.spawn(["sleep", seconds], { env: { ...process.env, ...env } });
  cleanups.push(() => {
    proc.kill("SIGKILL");
    return proc.exited;
  });
  return proc;
}

/** A warm server stand-in: a pinned process the pool may stop, last used at `usedAt`. */
function warm(pool: GpuPool, gpu: number, seconds: string, usedAt: number, chargeBytes: number): WarmProcess & { stopped: boolean } {
  const proc = pinned(pool.envFor(gpu), seconds);
  const w = {
    gpu,
    chargeBytes,
    pid: proc.pid as number | undefined,
    label: `sleep ${seconds}`,
    stopped: false,
    idle: () => true,
    lastUsedAt: () => usedAt,
    async stop() {
      w.stopped = true;
      proc.kill("SIGTERM");
      await proc.exited;
      pool.processEnded(proc.pid);
      pool.removeWarm(w);
      w.pid = undefined;
    },
  };
  pool.processStarted(proc.pid, gpu, chargeBytes);
  pool.addWarm(w);
  return w;
}

describe("GpuPool", () => {
  test("reports each GPU, pins engines by UUID, and measures what the worker's own processes hold (nvidia-smi)", async () => {
    const card = nvidiaCard("NVIDIA GeForce RTX 4090", 24564, 1000);
    const { pool, updates } = await poolFor({ cards: [card], usage: [{ match: "sleep 61.5", mib: 3000 }, { match: "sleep 62.5", mib: 500 }] });
    expect(pool.envFor(0)).toEqual({ CUDA_VISIBLE_DEVICES: card.uuid, CUDA_DEVICE_ORDER: "PCI_BUS_ID" });
    expect(pool.describe(0)).toBe("GPU 0 (NVIDIA GeForce RTX 4090)");
    const ours = pinned(pool.envFor(0), "61.5");
    pinned(pool.envFor(0), "62.5"); // pinned to the card, but not the worker's: someone else's
    pool.processStarted(ours.pid, 0, 2000 * MiB);
    await pool.refresh();
    const [d] = pool.devices();
    expect(Number(d!.totalMemoryBytes) / MiB).toBe(24564);
    expect(Number(d!.freeMemoryBytes) / MiB).toBe(24564 - 1000 - 3000 - 500);
    // Measured (3000 MiB), not what it was charged (2000 MiB).
    expect(Number(d!.workerMemoryBytes) / MiB).toBe(3000);
    expect(updates.at(-1)).toEqual(pool.devices());
  });

  test("on AMD (rocm-smi lists no processes) a process counts what it was charged; engines get HIP_VISIBLE_DEVICES", async () => {
    const { pool } = await poolFor({ cards: [amdCard("AMD Radeon RX 7900 XTX", 24560)], usage: [{ match: "sleep 63.5", mib: 3000 }] }, "amd");
    expect(pool.envFor(0)).toEqual({ HIP_VISIBLE_DEVICES: "0" });
    const p = pinned(pool.envFor(0), "63.5");
    pool.processStarted(p.pid, 0, 2500 * MiB);
    await pool.refresh();
    expect(Number(pool.devices()[0]!.workerMemoryBytes) / MiB).toBe(2500);
  });

  test("an update goes out when a GPU's figures move by 1% of its memory, not for less", async () => {
    const card = nvidiaCard("NVIDIA L4", 10000, 0);
    const { gpus, pool, updates } = await poolFor({ cards: [card] });
    gpus.set({ cards: [{ ...card, usedMiB: 50 }] });
    await pool.refresh();
    expect(updates).toEqual([]);
    gpus.set({ cards: [{ ...card, usedMiB: 2000 }] });
    await pool.refresh();
    expect(updates.map((u) => Number(u[0]!.freeMemoryBytes) / MiB)).toEqual([8000]);
  });

  test("makeRoom stops idle warm servers least recently used first, and only as many as it needs", async () => {
    const card = nvidiaCard("NVIDIA T1000", 1000, 0);
    const { pool, logger } = await poolFor({ cards: [card], usage: [{ match: "sleep 71.5", mib: 400 }, { match: "sleep 72.5", mib: 400 }] });
    const older = warm(pool, 0, "71.5", 1, 400 * MiB);
    const newer = warm(pool, 0, "72.5", 2, 400 * MiB);
    await pool.refresh();
    expect(pool.room(0)).toEqual({ freeBytes: 200 * MiB, idleBytes: 800 * MiB, pendingBytes: 0 });
    await pool.makeRoom(0, 500 * MiB, "job-1");
    expect([older.stopped, newer.stopped]).toEqual([true, false]);
    expect(pool.room(0).freeBytes).toBe(600 * MiB);
    expect(logger.entries.filter((l) => l.msg?.startsWith("stopping the least recently used")).map((l) => l.obj.stopping)).toEqual(["sleep 71.5"]);
  });

  test("a job that cannot fit even with every idle server stopped stops nothing; jobs still loading count against the room", async () => {
    const card = nvidiaCard("NVIDIA T1000", 1000, 100);
    const { pool } = await poolFor({ cards: [card], usage: [{ match: "sleep 73.5", mib: 300 }] });
    const idle = warm(pool, 0, "73.5", 1, 300 * MiB);
    await pool.refresh();
    const err = await pool.makeRoom(0, 2000 * MiB, "big").then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(NoRoomError);
    expect((err as Error).message).toBe(
      "GPU 0 (NVIDIA T1000) cannot hold the job: it needs 2.0 GiB, and the GPU has 600 MiB free, with 300 MiB more held by idle warm servers",
    );
    expect(idle.stopped).toBe(false);
    // Another job on the GPU will load 700 MiB it does not hold yet: a 300 MiB job no longer fits.
    pool.jobStarted("loading", 0, 700 * MiB);
    expect(pool.couldFit(0, 300 * MiB, "next")).toBe(false);
    expect(pool.couldFit(0, 200 * MiB, "next")).toBe(true);
    pool.jobEnded("loading");
    expect(pool.couldFit(0, 300 * MiB, "next")).toBe(true);
  });
});

describe("engines on a GPU", () => {
  async function jobGpu(pool: GpuPool, needBytes: number): Promise<JobGpu> {
    return { index: 0, label: pool.describe(0), env: pool.envFor(0), needBytes, needText: `${needBytes / MiB} MiB (stated)`, pool };
  }

  test("llama-server out of GPU memory fails its job as out-of-memory (not retried), naming the GPU and the need", async () => {
    const { pool } = await poolFor({ cards: [nvidiaCard("NVIDIA GeForce RTX 3060", 12288)] });
    const wd = await workDir([{ role: ModelFileRole.MODEL, filename: "big.gguf" }]);
    cleanups.push(wd.cleanup);
    const engine = new LlamaServerEngine({ binary: FAKE_LLAMA_SERVER, idleMs: 60_000, healthIntervalMs: 20, env: { ...process.env, FAKE_LLAMA_MODE: "oom-on-load" } });
    cleanups.push(() => engine.close());
    const gpu = await jobGpu(pool, 8000 * MiB);
    const err = await rejection(engine.run(request({ task: textTask({ prompt: "x" }), source: llamaSource("big.gguf"), files: wd.files, workDir: wd.dir, gpu })));
    expect(err).toBeInstanceOf(EngineError);
    expect(err.kind).toBe("out-of-memory");
    expect(err.retryable).toBe(false);
    expect(err.message).toStartWith(
      'llama-server ran out of memory on GPU 0 (NVIDIA GeForce RTX 3060) while loading model "test-model" (file big.gguf) (ggml_backend_cuda_buffer_type_alloc_buffer: allocating 13312.00 MiB on device 0: cudaMalloc failed: out of memory); the model was counted as needing 8000 MiB (stated): state a larger vramBytes on it',
    );
  });

  test("llama-server on a GPU gets -ngl all and the GPU's variables; a start with no room declines (no-room), starting nothing", async () => {
    const card = nvidiaCard("NVIDIA T1000", 1000, 900);
    const { pool } = await poolFor({ cards: [card] });
    const wd = await workDir([{ role: ModelFileRole.MODEL, filename: "m.gguf" }]);
    cleanups.push(wd.cleanup);
    const logger = memoryLogger();
    const engine = new LlamaServerEngine({ binary: FAKE_LLAMA_SERVER, idleMs: 60_000, healthIntervalMs: 20, logger });
    cleanups.push(() => engine.close());
    const err = await rejection(
      engine.run(request({ task: textTask({ prompt: "x" }), source: llamaSource("m.gguf"), files: wd.files, workDir: wd.dir, gpu: await jobGpu(pool, 500 * MiB) })),
    );
    expect([err.kind, err.retryable]).toEqual(["no-room", true]);
    expect(err.message).toContain("GPU 0 (NVIDIA T1000) cannot hold the job: it needs 500 MiB, and the GPU has 100 MiB free");
    expect(logger.pids("llama-server started")).toEqual([]);
    const server = engine.server(wd.files[0]!.path, 0)!;
    expect(server.args(1234)).toEqual(["-m", server.args(1234)[1]!, "--host", "127.0.0.1", "--port", "1234", "-ngl", "all"]);
  });

  test("a warm llama-server serves later jobs of its model on its own GPU only: on another GPU or the CPU the job is not warm", async () => {
    const { pool } = await poolFor({ cards: [nvidiaCard("NVIDIA GeForce RTX 3060", 12288), nvidiaCard("NVIDIA GeForce RTX 3060", 12288)] });
    const wd = await workDir([{ role: ModelFileRole.MODEL, filename: "m.gguf" }]);
    cleanups.push(wd.cleanup);
    const engine = new LlamaServerEngine({ binary: FAKE_LLAMA_SERVER, idleMs: 60_000, healthIntervalMs: 20 });
    cleanups.push(() => engine.close());
    const source = llamaSource("m.gguf");
    expect(engine.warmFiles(source, 0)).toBeUndefined();
    await engine.run(request({ task: textTask({ prompt: "x" }), source, files: wd.files, workDir: wd.dir, gpu: await jobGpu(pool, 500 * MiB) }));
    expect(engine.warmFiles(source, 0)).toEqual([{ role: ModelFileRole.MODEL, filename: "m.gguf", path: realpathSync(wd.files[0]!.path) }]);
    expect(engine.warmFiles(source, 1)).toBeUndefined();
    expect(engine.warmFiles(source)).toBeUndefined();
  });

  test("sd-cli out of memory on a GPU is out-of-memory, naming the GPU", async () => {
    const { pool } = await poolFor({ cards: [nvidiaCard("NVIDIA GeForce RTX 4060", 8188)] });
    const files = [{ role: ModelFileRole.DIFFUSION_MODEL, filename: "dit.gguf" }];
    const wd = await workDir(files);
    cleanups.push(wd.cleanup);
    const engine = new SdCliEngine({ binary: FAKE_SD_CLI, env: { ...process.env, FAKE_SD_MODE: "fail" } });
    const err = await rejection(
      engine.run(request({ task: imageTask({ prompt: "x" }), source: sdSource(files), files: wd.files, workDir: wd.dir, gpu: await jobGpu(pool, 4000 * MiB) })),
    );
    expect(err.kind).toBe("out-of-memory");
    expect(err.message).toStartWith(
      'sd-cli ran out of memory on GPU 0 (NVIDIA GeForce RTX 4060): sd-cli exited with status 1 after "[ERROR] stable-diffusion.cpp:2911 - get_learned_condition failed: out of memory"; the model was counted as needing 4000 MiB (stated)',
    );
  });
});
