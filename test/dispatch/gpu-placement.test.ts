import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { JobStatus, WaitReason } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole, ModelSourceSchema } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { GpuDeviceSchema, GpuVendor, WorkerService, type GpuDevice } from "../../gen/studio/v1/worker_service_pb.js";
import { estimateFromFiles } from "../../contract/vram.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { createJob, dispatchOf, rowOf } from "./fixtures.js";
import { barrier, h2Transport, SimWorker } from "./sim-worker.js";

const GiB = 1024 ** 3;

let t: TestStudio;
let jobs: Client<typeof JobService>;
let registry: Client<typeof RegistryService>;
const workers: SimWorker[] = [];
/** The studio's clock runs ahead by this much: a test moves it on so that the next read takes a fresh look at the workers. */
let skew = 0;

async function connect(hello: Parameters<typeof SimWorker.connect>[1] = {}) {
  const w = await SimWorker.connect(h2Transport(t.url), hello);
  workers.push(w);
  return w;
}

/** A GPU as a worker reports it: `free` GiB free of `total`, `worker` GiB of the rest held by its own engines. */
function gpu(index: number, total: number, free = total, opts: { worker?: number; slots?: number; name?: string } = {}): GpuDevice {
  return create(GpuDeviceSchema, {
    index,
    uuid: `GPU-${index}-test`,
    name: opts.name ?? `NVIDIA Test ${total} GB`,
    vendor: GpuVendor.NVIDIA,
    totalMemoryBytes: BigInt(total * GiB),
    freeMemoryBytes: BigInt(free * GiB),
    workerMemoryBytes: BigInt((opts.worker ?? 0) * GiB),
    slots: opts.slots ?? 1,
  });
}

/** A llama-cpp model needing `vram` GiB (stated), or, without it, one whose file states `approx` GiB. */
async function model(name: string, { vram, approx }: { vram?: number; approx?: number }) {
  const source = create(ModelSourceSchema, {
    engine: ModelEngine.LLAMA_CPP,
    files: [
      {
        role: ModelFileRole.MODEL,
        url: `http://127.0.0.1:9/${name}.gguf`,
        filename: `${name}.gguf`,
        approxBytes: approx === undefined ? undefined : BigInt(approx * GiB),
      },
    ],
    vramBytes: vram === undefined ? undefined : BigInt(vram * GiB),
  });
  await registry.createModel({ name, source });
}

const textJob = async (name: string) =>
  (await jobs.createJob({ model: name, task: { kind: { case: "text", value: { prompt: "hello", maxTokens: 4 } } } })).job!;

const llamaWorker = (name: string, gpus: GpuDevice[], extra: Parameters<typeof SimWorker.connect>[1] = {}) =>
  connect({ name, engines: [ModelEngine.LLAMA_CPP], slots: gpus.reduce((n, g) => n + g.slots, 0), gpus, ...extra });

beforeEach(async () => {
  skew = 0;
  t = await startTestStudio({}, { now: () => Date.now() + skew });
  jobs = t.client(JobService);
  registry = t.client(RegistryService);
});
afterEach(async () => {
  for (const w of workers.splice(0)) await w.close().catch(() => {});
  await t.stop();
});

describe("GPU-aware placement", () => {
  test("a job goes only to a worker with a GPU that can hold it, on that GPU; its row keeps the need for the claim", async () => {
    await model("big", { vram: 20 });
    const small = await llamaWorker("small", [gpu(0, 8)]);
    const job = await textJob("big");
    expect(rowOf(t, job.id).vramBytes).toBe(20 * GiB);
    expect(job.vram).toMatchObject({ bytes: BigInt(20 * GiB), estimated: false });
    await dispatchOf(t).dispatcher.idle();
    expect(small.pending()).toEqual([]);
    expect(rowOf(t, job.id).status).toBe("QUEUED");

    const large = await llamaWorker("large", [gpu(0, 8), gpu(3, 24)]);
    const offer = await large.nextOffer();
    expect(offer.jobId).toBe(job.id);
    expect(offer.gpuIndex).toBe(3);
    const listed = await t.client(WorkerService).listWorkers({});
    const info = listed.workers.find((w) => w.name === "large")!;
    expect(info.gpus.map((g) => [g.index, g.slots, g.slotsInUse, g.name])).toEqual([
      [0, 1, 0, "NVIDIA Test 8 GB"],
      [3, 1, 1, "NVIDIA Test 24 GB"],
    ]);
    expect(info.gpus[1]!.totalMemoryBytes).toBe(BigInt(24 * GiB));
    expect(small.pending()).toEqual([]);
  });

  test("the tightest GPU that fits takes a job; one slot per GPU; a job no free GPU can hold waits", async () => {
    await model("four", { vram: 4 });
    await model("twenty", { vram: 20 });
    const w = await llamaWorker("two-gpus", [gpu(0, 24), gpu(1, 8)]);
    const small = await textJob("four");
    expect((await w.nextOffer()).gpuIndex).toBe(1);
    const big = await textJob("twenty");
    const bigOffer = await w.nextOffer();
    expect([bigOffer.jobId, bigOffer.gpuIndex]).toEqual([big.id, 0]);
    const waiting = await textJob("four");
    await dispatchOf(t).dispatcher.idle();
    expect(w.pending()).toEqual([]);
    expect(rowOf(t, waiting.id).status).toBe("QUEUED");
    // The 20 GiB job ends: its GPU takes the waiting one (with the complete's receipt, in the same transaction).
    await w.completeInline(bigOffer, [{ data: new Uint8Array([1]), mimeType: "application/json" }]);
    const next = await w.nextOffer();
    expect([next.jobId, next.gpuIndex]).toEqual([waiting.id, 0]);
    expect(rowOf(t, small.id).status).toBe("OFFERED");
  });

  test("memory the worker's own engines hold counts as room (idle warm servers are stopped for it); what others use does not", async () => {
    await model("m17", { vram: 17 });
    await model("m19", { vram: 19 });
    // 24 GiB: 2 free, 16 held by the worker's idle warm server, 6 by another program.
    const w = await llamaWorker("warm", [gpu(0, 24, 2, { worker: 16 })]);
    const tooBig = await textJob("m19");
    await dispatchOf(t).dispatcher.idle();
    expect(w.pending()).toEqual([]);
    const fits = await textJob("m17");
    expect((await w.nextOffer()).jobId).toBe(fits.id);
    expect(rowOf(t, tooBig.id).status).toBe("QUEUED");
  });

  test("a GpuUpdate with more room offers what did not fit before; one with other GPUs ends the session", async () => {
    await model("m10", { vram: 10 });
    const w = await llamaWorker("busy-card", [gpu(0, 24, 6)]);
    const job = await textJob("m10");
    await dispatchOf(t).dispatcher.idle();
    expect(w.pending()).toEqual([]);
    // Another program on the card exited: 20 GiB free now.
    w.send({ case: "gpuUpdate", value: { gpus: [gpu(0, 24, 20)] } });
    expect((await w.nextOffer()).jobId).toBe(job.id);

    const listed = await t.client(WorkerService).listWorkers({});
    expect(listed.workers[0]!.gpus[0]!.freeMemoryBytes).toBe(BigInt(20 * GiB));

    w.send({ case: "gpuUpdate", value: { gpus: [gpu(0, 24, 20), gpu(1, 24)] } });
    await w.done;
    expect(String(w.error)).toContain("gpu_update: gpus must list the hello's GPUs, with the same indexes and slots");
  });

  test("without vramBytes the need is the files' approxBytes plus the stated margin, and says it is an estimate", async () => {
    await model("guess", { approx: 10 });
    const job = await textJob("guess");
    const need = estimateFromFiles(10 * GiB);
    expect(need).toBe(10 * GiB + 2 * GiB + 512 * 1024 ** 2);
    expect(job.vram).toMatchObject({ bytes: BigInt(need), estimated: true });
    expect((await registry.getModel({ name: "guess" })).model!.vram).toMatchObject({ bytes: BigInt(need), estimated: true });
    const tight = await llamaWorker("12gb", [gpu(0, 12)]);
    await dispatchOf(t).dispatcher.idle();
    expect(tight.pending()).toEqual([]);
    const roomy = await llamaWorker("16gb", [gpu(0, 16)]);
    expect((await roomy.nextOffer()).jobId).toBe(job.id);
  });

  test("a CPU-only worker is not checked against GPU memory; a job that counts none goes to any GPU with a free slot", async () => {
    await model("huge", { vram: 200 });
    await model("unknown", {});
    const gpuWorker = await llamaWorker("gpu", [gpu(0, 24)]);
    const unknown = await textJob("unknown");
    expect(unknown.vram).toBeUndefined();
    const offer = await gpuWorker.nextOffer();
    expect([offer.jobId, offer.gpuIndex]).toEqual([unknown.id, 0]);
    const huge = await textJob("huge");
    const cpu = await connect({ name: "cpu", engines: [ModelEngine.LLAMA_CPP], slots: 1 });
    const cpuOffer = await cpu.nextOffer();
    expect(cpuOffer.jobId).toBe(huge.id);
    expect(cpuOffer.gpuIndex).toBeUndefined();
  });

  test("two slots on one GPU share its memory: the second job is offered only while both fit", async () => {
    await model("m10", { vram: 10 });
    const w = await llamaWorker("shared", [gpu(0, 24, 24, { slots: 2 })]);
    const a = await textJob("m10");
    const b = await textJob("m10");
    const c = await textJob("m10");
    const first = await w.nextOffer();
    const second = await w.nextOffer();
    expect([first.jobId, second.jobId].sort()).toEqual([a.id, b.id].sort());
    await w.completeInline(first, [{ data: new Uint8Array([1]), mimeType: "application/json" }]);
    expect((await w.nextOffer()).jobId).toBe(c.id);

    await model("m15", { vram: 15 });
    const w2 = await llamaWorker("shared-2", [gpu(0, 24, 24, { slots: 2 })]);
    const d = await textJob("m15");
    expect((await w2.nextOffer()).jobId).toBe(d.id);
    const e = await textJob("m15");
    await dispatchOf(t).dispatcher.idle();
    expect(w2.pending()).toEqual([]);
    expect(rowOf(t, e.id).status).toBe("QUEUED");
  });

  test("a reconnecting worker's kept lease counts on the GPU it names", async () => {
    await model("m20", { vram: 20 });
    const first = await llamaWorker("flaky", [gpu(0, 24), gpu(1, 24)]);
    const job = await textJob("m20");
    const offer = await first.nextOffer();
    await first.close();
    const again = await llamaWorker("flaky", [gpu(0, 24), gpu(1, 24)], {
      leaseIds: [offer.leaseId],
      leaseGpus: { [offer.leaseId]: offer.gpuIndex! },
    });
    expect(again.welcome.keptLeaseIds).toEqual([offer.leaseId]);
    const info = (await t.client(WorkerService).listWorkers({})).workers.find((w) => w.name === "flaky")!;
    expect(info.gpus.find((g) => g.index === offer.gpuIndex)!.slotsInUse).toBe(1);
    const other = await textJob("m20");
    const next = await again.nextOffer();
    expect(next.jobId).toBe(other.id);
    expect(next.gpuIndex).not.toBe(offer.gpuIndex);
    expect(rowOf(t, job.id).status).toBe("OFFERED");
  });

  test("one placement round hands a worker only jobs its GPUs hold together", async () => {
    await model("m20", { vram: 20 });
    await model("m6", { vram: 6 });
    const a = await textJob("m20");
    const b = await textJob("m20");
    const c = await textJob("m6");
    // A free worker that takes none of these jobs makes the round choose among workers (not one worker's own claims).
    await connect({ name: "images-only", engines: [ModelEngine.SD_CPP], slots: 1, gpus: [gpu(0, 8)] });
    const w = await llamaWorker("24-and-8", [gpu(0, 24), gpu(1, 8)]);
    const offers = [await w.nextOffer(), await w.nextOffer()];
    expect(offers.map((o) => [o.jobId, o.gpuIndex]).sort()).toEqual(
      [
        [a.id, 0],
        [c.id, 1],
      ].sort(),
    );
    await dispatchOf(t).dispatcher.idle();
    expect(rowOf(t, b.id).status).toBe("QUEUED");
    expect(w.pending().filter((m) => m.case === "offer")).toEqual([]);
  });

  test("a job no connected GPU can hold says why it waits: none is that large, or none has that much room now", async () => {
    await model("huge", { vram: 40 });
    await model("mid", { vram: 10 });
    // 24 GiB in all: 2 free, 6 held by the worker's own (idle warm) servers, the rest by other programs.
    await llamaWorker("small-card", [gpu(0, 24, 2, { worker: 6 })]);
    const huge = await textJob("huge");
    expect(huge.waiting).toMatchObject({ reason: WaitReason.GPU_MEMORY, engine: "llama-cpp", capableWorkers: 1 });
    expect(huge.waiting!.message).toStartWith(
      "it needs 40 GiB of GPU memory and no GPU of the 1 worker that runs llama-cpp is that large (the largest has 24 GiB)",
    );
    const mid = await textJob("mid");
    expect(mid.waiting).toMatchObject({ reason: WaitReason.GPU_MEMORY, capableWorkers: 1 });
    expect(mid.waiting!.message).toStartWith(
      "it needs 10 GiB of GPU memory and no free GPU of the 1 worker that runs llama-cpp with a free slot has that much room now (the most is 8.0 GiB)",
    );

    // A worker with room takes the mid job; the huge one still fits no GPU of either.
    const roomy = await llamaWorker("roomy-card", [gpu(0, 24)]);
    expect((await roomy.nextOffer()).jobId).toBe(mid.id);
    skew += 2000;
    const still = (await jobs.getJob({ jobId: huge.id })).job!;
    expect(still.status).toBe(JobStatus.QUEUED);
    expect(still.waiting).toMatchObject({ reason: WaitReason.GPU_MEMORY, capableWorkers: 2, connectedWorkers: 2 });
    expect(still.waiting!.message).toStartWith("it needs 40 GiB of GPU memory and no GPU of the 2 workers that run llama-cpp is that large");
  });

  test("synthetic jobs on a GPU worker take a slot on some GPU", async () => {
    const w = await connect({ name: "synth", engines: [ModelEngine.SYNTHETIC], slots: 2, gpus: [gpu(0, 8), gpu(1, 8)] });
    await createJob(jobs, "synthetic");
    await createJob(jobs, "synthetic");
    const offers = [await w.nextOffer(), await w.nextOffer()];
    expect(offers.map((o) => o.gpuIndex).sort()).toEqual([0, 1]);
    await barrier(w);
  });
});

describe("a worker's GPUs in hello are checked", () => {
  const cases: Array<[string, Parameters<typeof SimWorker.connect>[1], string]> = [
    ["slots that do not add up", { slots: 3, gpus: [gpu(0, 8), gpu(1, 8)] }, "gpus hold 2 slots in all, but slots is 3"],
    ["a GPU twice", { slots: 2, gpus: [gpu(0, 8), gpu(0, 8)] }, "GPU index 0 is listed twice"],
    ["more free than total", { slots: 1, gpus: [create(GpuDeviceSchema, { ...gpu(0, 8), freeMemoryBytes: BigInt(9 * GiB) })] }, "free_memory_bytes"],
    ["no vendor", { slots: 1, gpus: [create(GpuDeviceSchema, { ...gpu(0, 8), vendor: GpuVendor.UNSPECIFIED })] }, "vendor must be"],
    ["no memory", { slots: 1, gpus: [create(GpuDeviceSchema, { ...gpu(0, 8), totalMemoryBytes: 0n, freeMemoryBytes: 0n })] }, "total_memory_bytes must be"],
    ["a lease on a GPU it does not have", { slots: 1, gpus: [gpu(0, 8)], leaseIds: ["l1"], leaseGpus: { l1: 4 } }, "lease_gpus puts lease"],
  ];
  for (const [what, hello, message] of cases)
    test(`${what} ends the session with INVALID_ARGUMENT`, async () => {
      const err = await SimWorker.connect(h2Transport(t.url), { name: "bad", engines: [ModelEngine.LLAMA_CPP], ...hello }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(String(err)).toContain("invalid_argument");
      expect(String(err)).toContain(message);
    });
});
