import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createClient, type Client } from "@connectrpc/connect";
import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { JobPhase, JobStatus } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { sqliteOf, startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { createJob, createSdModel, dispatchOf, rowOf, sha } from "./fixtures.js";
import { barrier, h2Transport, SimWorker } from "./sim-worker.js";

let t: TestStudio;
let jobs: Client<typeof JobService>;
let registry: Client<typeof RegistryService>;
const workers: SimWorker[] = [];

async function connect(hello: Parameters<typeof SimWorker.connect>[1] = {}) {
  const w = await SimWorker.connect(h2Transport(t.url), hello);
  workers.push(w);
  return w;
}

const bytes = (n: number, seed = 1) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
};

beforeEach(async () => {
  t = await startTestStudio({ maxOutputBytes: 3 * 1024 * 1024 });
  jobs = t.client(JobService);
  registry = t.client(RegistryService);
});
afterEach(async () => {
  for (const w of workers.splice(0)) await w.close().catch(() => {});
  await t.stop();
});

describe("session", () => {
  test("hello first, welcome back; a message before hello is INVALID_ARGUMENT", async () => {
    const w = await connect({ name: "gpu-1" });
    expect(w.welcome.workerId).toMatch(/^w_/);
    expect(w.welcome.leaseTtlMs).toBe(t.studio.ctx.config.leaseTtlMs);
    expect(w.welcome.heartbeatIntervalMs).toBe(t.studio.ctx.config.heartbeatIntervalMs);
    const list = await createClient(WorkerService, h2Transport(t.url)).listWorkers({});
    expect(list.workers.map((x) => x.name)).toEqual(["gpu-1"]);

    const client = createClient(WorkerService, h2Transport(t.url));
    const stream = client.session(
      (async function* () {
        yield { message: { case: "heartbeat" as const, value: { leaseIds: [] } } };
      })(),
    );
    let err: unknown;
    try {
      for await (const _ of stream);
    } catch (e) {
      err = e;
    }
    expect(String(err)).toContain("[invalid_argument] the first message of a session must be hello");
  });

  test("a created job is pushed to a connected worker with its resolved source, then completes with outputs", async () => {
    await createSdModel(registry, "sd", [sha("a")]);
    const w = await connect({ engines: [ModelEngine.SD_CPP] });
    const job = await createJob(jobs, "sd", { batchCount: 2 });
    const offer = await w.nextOffer();
    expect(offer.jobId).toBe(job.id);
    expect(offer.attempt).toBe(1);
    expect(offer.modelSource?.engine).toBe(ModelEngine.SD_CPP);
    expect(offer.modelSource?.files[0]?.sha256).toBe(sha("a"));
    expect(rowOf(t, job.id).status).toBe("OFFERED");

    w.send({ case: "progress", value: { jobId: job.id, leaseId: offer.leaseId, progress: { phase: JobPhase.RUNNING, step: 1, steps: 4 } } });
    w.send({ case: "accept", value: { jobId: job.id, leaseId: offer.leaseId } });
    expect((await w.receipt(job.id, offer.leaseId)).ok).toBe(true);
    expect(rowOf(t, job.id).status).toBe("RUNNING");
    expect(rowOf(t, job.id).progress).toContain("JOB_PHASE_RUNNING");

    const a = bytes(2_500_000, 1);
    const b = bytes(10, 2);
    w.upload(offer, 0, a, { mimeType: "image/png" });
    w.upload(offer, 1, b, { mimeType: "image/png" });
    const r = await w.complete(offer, 2);
    expect(r).toMatchObject({ ok: true, code: "" });

    const done = (await jobs.getJob({ jobId: job.id })).job!;
    expect(done.status).toBe(JobStatus.SUCCEEDED);
    expect(done.outputs.map((o) => [o.index, Number(o.sizeBytes), o.mimeType])).toEqual([
      [0, a.byteLength, "image/png"],
      [1, 10, "image/png"],
    ]);
    const digest = createHash("sha256").update(a).digest("hex");
    expect(done.outputs[0]!.sha256).toBe(digest);
    expect(existsSync(join(t.dataDir, "outputs", digest.slice(0, 2), digest))).toBe(true);

    // GetJobOutput over gRPC and Connect: metadata first, then chunks of at most 1 MiB.
    for (const protocol of ["grpc", "connect"] as const) {
      const out = createClient(JobService, h2Transport(t.url, protocol)).getJobOutput({ jobId: job.id, index: 0 });
      const parts: Uint8Array[] = [];
      let first = true;
      for await (const m of out) {
        if (first) expect(m.output?.sha256).toBe(digest);
        else expect(m.chunk.byteLength).toBeLessThanOrEqual(1024 * 1024);
        first = false;
        parts.push(m.chunk);
      }
      expect(Buffer.concat(parts).equals(Buffer.from(a))).toBe(true);
    }
    // The plain HTTP route, for browsers and curl.
    const res = await fetch(`${t.url}/jobs/${job.id}/outputs/1`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(res.headers.get("content-length")).toBe("10");
    expect(res.headers.get("etag")).toBe(`"${createHash("sha256").update(b).digest("hex")}"`);
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(b))).toBe(true);
    const cached = await fetch(`${t.url}/jobs/${job.id}/outputs/1`, { headers: { "if-none-match": res.headers.get("etag")! } });
    expect(cached.status).toBe(304);
    expect((await fetch(`${t.url}/jobs/${job.id}/outputs/7`)).status).toBe(404);
    expect((await fetch(`${t.url}/jobs/nope/outputs/0`)).status).toBe(404);
    let notFound: unknown;
    try {
      for await (const _ of createClient(JobService, h2Transport(t.url)).getJobOutput({ jobId: job.id, index: 9 }));
    } catch (e) {
      notFound = e;
    }
    expect(String(notFound)).toContain("[not_found]");

    // Exactly once: a second complete under the same lease is refused and changes nothing.
    const again = await w.complete(offer, 2);
    expect(again).toMatchObject({ ok: false, code: "failed_precondition" });
    expect(rowOf(t, job.id).status).toBe("SUCCEEDED");
  });

  test("progress reaches WatchJobs, and a cancelled offer's late accept is refused", async () => {
    const w = await connect();
    const job = await createJob(jobs);
    const offer = await w.nextOffer();
    const watch = createClient(JobService, h2Transport(t.url)).watchJobs({ jobIds: [job.id], includeSnapshot: true })[Symbol.asyncIterator]();
    // The snapshot comes after the watch subscribed, so the progress below cannot be missed.
    expect((await watch.next()).value?.snapshot).toBe(true);
    w.send({ case: "progress", value: { jobId: job.id, leaseId: offer.leaseId, progress: { phase: JobPhase.RUNNING, step: 3, steps: 9 } } });
    let found;
    for (let m = await watch.next(); !m.done; m = await watch.next()) {
      if (m.value.job?.progress?.step === 3) {
        found = m.value.job;
        break;
      }
    }
    if (!found) throw new Error("the watch ended without the progress");
    await watch.return?.();
    expect(found.status).toBe(JobStatus.RUNNING);
    expect(found.progress?.steps).toBe(9);

    await jobs.cancelJob({ jobId: job.id });
    expect(await w.nextCancel()).toMatchObject({ jobId: job.id, leaseId: offer.leaseId });
    w.send({ case: "accept", value: { jobId: job.id, leaseId: offer.leaseId } });
    expect(await w.receipt(job.id, offer.leaseId)).toMatchObject({ ok: false, code: "failed_precondition" });
  });

  test("engine filtering: a job only reaches a worker that runs its engine", async () => {
    await createSdModel(registry, "sd", [sha("b")]);
    const text = await connect({ name: "llama-only", engines: [ModelEngine.LLAMA_CPP] });
    const job = await createJob(jobs, "sd");
    const sd = await connect({ name: "sd", engines: [ModelEngine.SD_CPP] });
    const offer = await sd.nextOffer();
    expect(offer.jobId).toBe(job.id);
    expect(rowOf(t, job.id).leaseWorker).toBe("sd");
    expect(text.pending().filter((m) => m.case === "offer")).toEqual([]);
  });

  test("a legacy row without a source reaches a worker without one", async () => {
    const now = Date.now();
    sqliteOf(t.studio).run(
      `INSERT INTO graphicsJobs (id, model, status, task, createdAt, updatedAt) VALUES ('legacy-1', 'old-model', 'QUEUED', ?, ?, ?)`,
      [JSON.stringify({ image: { prompt: "old" } }), now, now],
    );
    const w = await connect({ engines: [ModelEngine.LLAMA_CPP] });
    const offer = await w.nextOffer();
    expect(offer.jobId).toBe("legacy-1");
    expect(offer.modelSource).toBeUndefined();
    expect(offer.task?.kind.case).toBe("image");
    const r = await w.fail(offer, "job legacy-1 has no model source: recreate it", false);
    expect(r.ok).toBe(true);
    expect(rowOf(t, "legacy-1")).toMatchObject({ status: "FAILED", error: "job legacy-1 has no model source: recreate it" });
  });

  test("a wrong digest, a short upload and an over-limit output are refused and nothing is stored", async () => {
    const w = await connect();
    const job = await createJob(jobs);
    const offer = await w.nextOffer();
    const data = bytes(2048);
    w.upload(offer, 0, data, { sha256: sha("c") });
    const wrong = await w.receipt(job.id, offer.leaseId);
    // A refused output's receipt names its index, so the worker knows which output to send again.
    expect(wrong).toMatchObject({ ok: false, code: "invalid_argument", outputIndex: 0 });
    expect(wrong.message).toContain("sha256 of the bytes is");

    w.upload(offer, 0, bytes(100), { totalSize: 4n * 1024n * 1024n });
    const big = await w.receipt(job.id, offer.leaseId);
    expect(big).toMatchObject({ ok: false, code: "resource_exhausted" });

    const chunk = (offset: bigint) => ({
      case: "outputChunk" as const,
      value: { jobId: job.id, leaseId: offer.leaseId, index: 0, mimeType: "image/png", totalSize: 10n, sha256: sha("d"), offset, data: bytes(5) },
    });
    w.send(chunk(0n));
    w.send(chunk(7n));
    const gap = await w.receipt(job.id, offer.leaseId);
    expect(gap).toMatchObject({ ok: false, code: "invalid_argument" });
    expect(gap.message).toContain("chunk offset 7 does not follow the 5 bytes received");

    const r = await w.complete(offer, 1);
    expect(r).toMatchObject({ ok: false, code: "failed_precondition" });
    expect(r.outputIndex).toBeUndefined();
    expect(r.message).toContain("output 0 was not received");
    expect(rowOf(t, job.id).status).toBe("OFFERED");
    const stored = readdirSync(join(t.dataDir, "outputs")).filter((d) => d !== ".tmp");
    expect(stored).toEqual([]);
    expect(readdirSync(join(t.dataDir, "outputs", ".tmp"))).toEqual([]);
    expect(await dispatchOf(t).outputs.has(createHash("sha256").update(data).digest("hex"))).toBe(false);
  });
});
