import { afterEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { OfferSchema, TaskSchema } from "../../../gen/studio/v1/job_pb.js";
import { ModelEngine, ModelFileRole, ModelSourceSchema } from "../../../gen/studio/v1/model_pb.js";
import { GpuVendor, WelcomeSchema } from "../../../gen/studio/v1/worker_service_pb.js";
import { GpuPool } from "../../../worker/gpus/gpu-pool.js";
import { planSlots } from "../../../worker/gpus/gpu-plan.js";
import { readInventory } from "../../../worker/gpus/inventory.js";
import { MultiEngine } from "../../../worker/engines/multi-engine.js";
import { SyntheticEngine } from "../../../worker/engines/synthetic-engine.js";
import type { Engine } from "../../../worker/engines/types.js";
import type { Downloads, JobView } from "../../../worker/runtime/ports.js";
import { WorkerRuntime } from "../../../worker/runtime/worker-runtime.js";
import type { LiveSession, SessionMessage } from "../../../worker/session/session-client.js";
import { FAKE_NVIDIA_SMI, fakeGpus, nvidiaCard } from "./fake-gpus.js";

const MiB = 1024 * 1024;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  delete process.env.FAKE_GPU_STATE;
});

/** A session that records what the runtime posts and sends (no studio: receipts never come). */
function recordingSession(): LiveSession & { posted: SessionMessage[] } {
  const posted: SessionMessage[] = [];
  return {
    id: 1,
    welcome: create(WelcomeSchema, { workerId: "w", heartbeatIntervalMs: 1000, leaseTtlMs: 30_000 }),
    posted,
    isClosed: false,
    post: (m) => posted.push(m) > 0,
    postOrMerge: (m) => posted.push(m) > 0,
    send: async (m) => void posted.push(m),
  };
}

const view: JobView = { started() {}, progress() {}, finished() {} };

/**
 * A runtime with one slot per card of the stand-in nvidia-smi, a synthetic engine that takes its time, and no downloads.
 * `anySource` runs every job on that engine as if its source were synthetic (a llama-cpp source carries a GPU need).
 */
async function runtimeOn(cards: ReturnType<typeof nvidiaCard>[], { stepDelayMs = 1000, anySource = false } = {}) {
  const gpus = fakeGpus({ cards });
  cleanups.push(gpus.cleanup);
  process.env.FAKE_GPU_STATE = gpus.path;
  const tools = { nvidiaSmi: FAKE_NVIDIA_SMI };
  const plan = planSlots({ kind: "all" }, (await readInventory(tools)).snapshot.gpus, {});
  const pool = new GpuPool({ gpus: plan.gpus, vendor: "nvidia", tools, pollMs: 60_000, logger: pino({ level: "silent" }) });
  const downloads: Downloads & { asked: number } = {
    asked: 0,
    async ensureAll() {
      downloads.asked++;
      return [];
    },
    cachedDigests: () => [],
    cachedUrls: () => [],
    touchCached: async () => {},
  };
  const synthetic = new SyntheticEngine({ stepDelayMs });
  const engines = new MultiEngine([synthetic]);
  const asSynthetic: Engine = {
    kind: ModelEngine.LLAMA_CPP,
    run: (req) => synthetic.run({ ...req, source: create(ModelSourceSchema, { engine: ModelEngine.SYNTHETIC }) }),
    close: () => synthetic.close(),
  };
  const work = mkdtempSync(join(tmpdir(), "runtime-gpus-"));
  const runtime = new WorkerRuntime({
    name: "gpu-rt",
    version: "test",
    slots: plan.slotGpus.length,
    slotGpus: plan.slotGpus,
    gpus: pool,
    engines: { kinds: [ModelEngine.SYNTHETIC, ModelEngine.LLAMA_CPP], route: (m, s) => (anySource ? asSynthetic : engines.route(m, s)) },
    downloads,
    view,
    logger: pino({ level: "silent" }),
    workRoot: work,
    jobTimeoutMs: 30_000,
  });
  const session = recordingSession();
  runtime.attach({ session, waitForSession: async () => session });
  cleanups.push(async () => {
    runtime.stopNow();
    rmSync(work, { recursive: true, force: true });
  });
  return { runtime, session, downloads, pool };
}

const offer = (jobId: string, gpuIndex: number | undefined, source = create(ModelSourceSchema, { engine: ModelEngine.SYNTHETIC })) =>
  create(OfferSchema, {
    jobId,
    leaseId: `lease-${jobId}`,
    model: "m",
    task: create(TaskSchema, { kind: { case: "image", value: { prompt: "p", seed: 1n } } }),
    modelSource: source,
    attempt: 1,
    gpuIndex,
  });

const declines = (s: { posted: SessionMessage[] }) => s.posted.flatMap((m) => (m.case === "decline" ? [[m.value.jobId, m.value.reason]] : []));

describe("the worker runtime on GPUs", () => {
  test("hello carries the GPUs and which GPU each held lease runs on; an offer takes a slot of the GPU it names", async () => {
    const cards = [nvidiaCard("NVIDIA GeForce RTX 4090", 24564), nvidiaCard("NVIDIA GeForce RTX 3060", 12288)];
    const { runtime, session } = await runtimeOn(cards);
    const first = runtime.hello();
    expect(first.slots).toBe(2);
    expect(first.gpus.map((g) => [g.index, g.uuid, g.name, g.vendor, g.slots])).toEqual([
      [0, cards[0]!.uuid, "NVIDIA GeForce RTX 4090", GpuVendor.NVIDIA, 1],
      [1, cards[1]!.uuid, "NVIDIA GeForce RTX 3060", GpuVendor.NVIDIA, 1],
    ]);
    runtime.message({ case: "offer", value: offer("a", 1) }, session);
    runtime.message({ case: "offer", value: offer("b", 1) }, session);
    expect(declines(session)).toEqual([["b", "no free slot on GPU 1 (1 of 2 in use)"]]);
    runtime.message({ case: "offer", value: offer("c", 0) }, session);
    expect(declines(session)).toHaveLength(1);
    expect(runtime.hello().leaseGpus).toEqual({ "lease-a": 1, "lease-c": 0 });
  });

  test("an offer its GPU cannot hold is declined at once, before any download", async () => {
    const { runtime, session, downloads } = await runtimeOn([nvidiaCard("NVIDIA T1000", 1000, 200)]);
    const big = create(ModelSourceSchema, {
      engine: ModelEngine.LLAMA_CPP,
      files: [{ role: ModelFileRole.MODEL, url: "http://127.0.0.1:9/m.gguf", filename: "m.gguf" }],
      vramBytes: BigInt(900 * MiB),
    });
    runtime.message({ case: "offer", value: offer("big", 0, big) }, session);
    expect(declines(session)).toEqual([
      ["big", "GPU 0 (NVIDIA T1000) cannot hold the job: it needs 900 MiB of GPU memory (the source's vramBytes); the GPU has 800 MiB free for it"],
    ]);
    expect(downloads.asked).toBe(0);
  });

  test("once its engine is done, a job's GPU need stops counting as still to load, before its complete's receipt", async () => {
    // The studio may offer the slot's next job as soon as it has the complete, before its receipt reaches
    // the worker: that job's start must not see the previous one's need as memory still to be loaded.
    const { runtime, session, pool } = await runtimeOn([nvidiaCard("NVIDIA T1000", 1000, 0)], { stepDelayMs: 1, anySource: true });
    const needy = create(ModelSourceSchema, {
      engine: ModelEngine.LLAMA_CPP,
      files: [{ role: ModelFileRole.MODEL, url: "http://127.0.0.1:9/m.gguf", filename: "m.gguf" }],
      vramBytes: BigInt(600 * MiB),
    });
    runtime.message({ case: "offer", value: offer("first", 0, needy) }, session);
    expect(pool.room(0).pendingBytes).toBe(600 * MiB);
    // This session never sends receipts: the job's run stays open after its complete.
    while (!session.posted.some((m) => m.case === "complete")) await Bun.sleep(5);
    expect(pool.room(0).pendingBytes).toBe(0);
  });
});
