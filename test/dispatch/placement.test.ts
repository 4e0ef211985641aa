import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import type { Client } from "@connectrpc/connect";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { createJob, createSdModel, dispatchOf, rowOf, sdSource, sha } from "./fixtures.js";
import { barrier, h2Transport, simWorkerPool } from "./sim-worker.js";

let t: TestStudio;
let jobs: Client<typeof JobService>;
let registry: Client<typeof RegistryService>;
const workers = simWorkerPool(() => t.url);
const connect = workers.connect;

beforeEach(async () => {
  t = await startTestStudio();
  jobs = t.client(JobService);
  registry = t.client(RegistryService);
});
afterEach(async () => {
  await workers.closeAll();
  await t.stop();
});

describe("placement", () => {
  test("a job goes to the free worker whose cache holds its files, from hello or a later CacheUpdate", async () => {
    await createSdModel(registry, "warm", [sha("1"), sha("2")]);
    await createSdModel(registry, "other", [sha("3")]);
    const cold = await connect({ name: "cold", engines: [ModelEngine.SD_CPP] });
    const warm = await connect({ name: "warm", engines: [ModelEngine.SD_CPP], cachedSha256: [sha("1"), sha("2")] });
    const j1 = await createJob(jobs, "warm");
    expect((await warm.nextOffer()).jobId).toBe(j1.id);
    expect(rowOf(t, j1.id).leaseWorker).toBe("warm");

    // "cold" fetches the other model's file and says so; a new worker with nothing cached joins first in line.
    cold.send({ case: "cacheUpdate", value: { addedSha256: [sha("3")], removedSha256: [] } });
    await barrier(cold);
    const fresh = await connect({ name: "fresh", engines: [ModelEngine.SD_CPP], slots: 4 });
    await dispatchOf(t).dispatcher.idle();
    const j2 = await createJob(jobs, "other");
    expect((await cold.nextOffer()).jobId).toBe(j2.id);
    expect(fresh.pending()).toEqual([]);
  });

  test("a model whose files carry no sha256 goes to the worker that reported their URLs cached (hello or CacheUpdate)", async () => {
    const plain = (name: string) => {
      const source = sdSource([sha("a"), sha("b")]);
      for (const f of source.files) {
        f.url = `http://127.0.0.1:9/${name}/${f.filename}`;
        delete f.sha256;
      }
      return source;
    };
    await registry.createModel({ name: "plain", source: plain("plain") });
    await registry.createModel({ name: "plain2", source: plain("plain2") });
    const urls = (name: string) => ["f0.gguf", "f1.gguf"].map((f) => `http://127.0.0.1:9/${name}/${f}`);
    // "roomy" has more free slots, so without a cache match it would win every job.
    const roomy = await connect({ name: "roomy", engines: [ModelEngine.SD_CPP], slots: 4 });
    const warm = await connect({ name: "warm", engines: [ModelEngine.SD_CPP], slots: 1, cachedUrls: urls("plain") });
    const j1 = await createJob(jobs, "plain");
    expect((await warm.nextOffer()).jobId).toBe(j1.id);
    expect(rowOf(t, j1.id).leaseWorker).toBe("warm");

    // Holding one of two URLs is not enough; a CacheUpdate naming both is.
    const partial = await connect({ name: "partial", engines: [ModelEngine.SD_CPP], slots: 1, cachedUrls: urls("plain2").slice(0, 1) });
    const fresh = await connect({ name: "fresh", engines: [ModelEngine.SD_CPP], slots: 1 });
    fresh.send({ case: "cacheUpdate", value: { addedSha256: [], removedSha256: [], addedUrls: urls("plain2"), removedUrls: [] } });
    await barrier(fresh);
    const j2 = await createJob(jobs, "plain2");
    expect((await fresh.nextOffer()).jobId).toBe(j2.id);
    expect(roomy.pending()).toEqual([]);
    expect(partial.pending()).toEqual([]);
  });

  test("a hello whose cached_urls hold a non-http URL is refused with INVALID_ARGUMENT naming the field", async () => {
    const err = await connect({ name: "odd", cachedUrls: ["file:///etc/passwd"] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(String(err)).toContain("cached_urls");
    expect(String(err)).toContain("invalid_argument");
  });

  test("without a cache match a free worker takes the oldest job it can serve, highest priority first", async () => {
    const low = await createJob(jobs, "synthetic", { priority: 0 });
    const high = await createJob(jobs, "synthetic", { priority: 5 });
    const later = await createJob(jobs, "synthetic", { priority: 0 });
    const w = await connect({ slots: 1 });
    const order: string[] = [];
    for (let i = 0; i < 3; i++) {
      const o = await w.nextOffer();
      order.push(o.jobId);
      w.upload(o, 0, new Uint8Array([i]));
      expect((await w.complete(o)).ok).toBe(true);
    }
    expect(order).toEqual([high.id, low.id, later.id]);
  });

  test("a job created while a worker is idle reaches it without any timer (push)", async () => {
    const w = await connect();
    await dispatchOf(t).reaper.stop();
    const job = await createJob(jobs);
    expect((await w.nextOffer()).jobId).toBe(job.id);
  });

  test("an idle worker is offered a new job before its creator is answered, and before the job's OFFERED event", async () => {
    const w = await connect();
    const { registry, reaper } = dispatchOf(t);
    await reaper.stop();
    const order: string[] = [];
    // When OFFERED is published, the offer has been handed to the worker's stream (its slot is taken).
    const unsubscribe = t.studio.ctx.events.subscribe(
      (c) => c.status === "OFFERED" && order.push(`OFFERED published, worker holding ${registry.all().flatMap((e) => [...e.leases.values()]).join()}`),
    );
    // The studio writes the offer a turn before it answers CreateJob (this process is the studio too).
    const offered = w.nextOffer().then((o) => (order.push("offer received"), o));
    const job = await createJob(jobs);
    order.push("creator answered");
    expect((await offered).jobId).toBe(job.id);
    unsubscribe();
    expect(order).toEqual([`OFFERED published, worker holding ${job.id}`, "offer received", "creator answered"]);
  });

  test("ListWorkers describes each connected worker", async () => {
    await connect({ name: "x", version: "1.2.3", slots: 3, labels: { gpu: "a100" }, cachedSha256: [sha("9")], engines: [ModelEngine.SD_CPP, ModelEngine.SYNTHETIC] });
    const { workers: list } = await t.client(
      (await import("../../gen/studio/v1/worker_service_pb.js")).WorkerService,
      h2Transport(t.url),
    ).listWorkers({});
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ name: "x", version: "1.2.3", slots: 3, slotsInUse: 0, labels: { gpu: "a100" }, cachedSha256: [sha("9")], draining: false });
    expect(list[0]!.engines.sort()).toEqual([ModelEngine.SD_CPP, ModelEngine.SYNTHETIC].sort());
    expect(list[0]!.connectTime).toBeDefined();
  });
});
