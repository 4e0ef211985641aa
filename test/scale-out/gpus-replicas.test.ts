import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { GpuDeviceSchema, GpuVendor, WorkerService, type GpuDevice, type WorkerInfo } from "../../gen/studio/v1/worker_service_pb.js";
import { h2Transport, SimWorker } from "../dispatch/sim-worker.js";
import { freshPgDatabase } from "../helpers/pg-storage.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";

/** Two replicas on one PostgreSQL: a worker's GPUs, reported to one, are what every replica lists and places by. */
const GiB = 1024 ** 3;
let a: TestStudio;
let b: TestStudio;
const workers: SimWorker[] = [];

beforeAll(async () => {
  const databaseUrl = await freshPgDatabase();
  [a, b] = await Promise.all([startTestStudio({ databaseUrl }), startTestStudio({ databaseUrl })]);
});
afterAll(async () => {
  for (const w of workers) await w.close().catch(() => {});
  await Promise.all([a?.stop(), b?.stop()]);
});

const gpu = (index: number, total: number, free = total): GpuDevice =>
  create(GpuDeviceSchema, {
    index,
    uuid: `GPU-replica-${index}`,
    name: `NVIDIA Test ${total} GB`,
    vendor: GpuVendor.NVIDIA,
    totalMemoryBytes: BigInt(total * GiB),
    freeMemoryBytes: BigInt(free * GiB),
    slots: 1,
  });

/** Follows WatchWorkers on a replica until a worker of that name satisfies `until` (every replica's workers are in it). */
async function listedOn(t: TestStudio, name: string, until: (w: WorkerInfo) => boolean): Promise<WorkerInfo> {
  const abort = new AbortController();
  const known = new Map<string, WorkerInfo>();
  try {
    for await (const res of createClient(WorkerService, h2Transport(t.url)).watchWorkers({}, { signal: abort.signal })) {
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

describe("GPUs across replicas", () => {
  test("ListWorkers on A shows the GPUs of a worker on B, and the updates B gets; a job made on A goes to the GPU on B that holds it", async () => {
    await createClient(RegistryService, h2Transport(a.url)).createModel({
      name: "needs-20",
      source: {
        engine: ModelEngine.LLAMA_CPP,
        files: [{ role: ModelFileRole.MODEL, url: "http://127.0.0.1:9/m.gguf", filename: "m.gguf" }],
        vramBytes: BigInt(20 * GiB),
      },
    });
    const small = await SimWorker.connect(h2Transport(a.url), { name: "small-on-a", engines: [ModelEngine.LLAMA_CPP], slots: 1, gpus: [gpu(0, 8)] });
    const big = await SimWorker.connect(h2Transport(b.url), { name: "big-on-b", engines: [ModelEngine.LLAMA_CPP], slots: 2, gpus: [gpu(0, 8), gpu(1, 24, 12)] });
    workers.push(small, big);

    const seen = await listedOn(a, "big-on-b", (w) => w.gpus.length === 2);
    expect(seen.gpus.map((g) => [g.index, g.name, Number(g.freeMemoryBytes) / GiB])).toEqual([
      [0, "NVIDIA Test 8 GB", 8],
      [1, "NVIDIA Test 24 GB", 12],
    ]);
    big.send({ case: "gpuUpdate", value: { gpus: [gpu(0, 8), gpu(1, 24, 23)] } });
    await listedOn(a, "big-on-b", (w) => Number(w.gpus[1]?.freeMemoryBytes ?? 0) === 23 * GiB);

    const { job } = await createClient(JobService, h2Transport(a.url)).createJob({ model: "needs-20", task: { kind: { case: "text", value: { prompt: "x" } } } });
    const offer = await big.nextOffer();
    expect([offer.jobId, offer.gpuIndex]).toEqual([job!.id, 1]);
    expect(small.pending()).toEqual([]);
    const onA = await listedOn(a, "big-on-b", (w) => w.gpus[1]?.slotsInUse === 1);
    expect(onA.jobIds).toEqual([job!.id]);
  });
});
