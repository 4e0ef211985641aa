import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createClient, type Client } from "@connectrpc/connect";
import { JobStatus } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { createJob, dispatchOf, manualClock, rowOf } from "./fixtures.js";
import { barrier, h2Transport, simWorkerPool } from "./sim-worker.js";

const TTL = 1000;
let t: TestStudio;
let jobs: Client<typeof JobService>;
let clock: ReturnType<typeof manualClock>;
const workers = simWorkerPool(() => t.url);
const connect = workers.connect;

const listWorkers = async () => (await createClient(WorkerService, h2Transport(t.url)).listWorkers({})).workers;

beforeEach(async () => {
  clock = manualClock();
  t = await startTestStudio({ leaseTtlMs: TTL, heartbeatIntervalMs: 200 }, { now: clock.now });
  jobs = t.client(JobService);
});
afterEach(async () => {
  await workers.closeAll();
  await t.stop();
});

describe("leases", () => {
  test("an expired lease requeues the job, and after max attempts it fails naming the lost worker", async () => {
    const w = await connect({ name: "flaky" });
    const job = await createJob(jobs, "synthetic", { maxAttempts: 2 });
    const first = await w.nextOffer();
    clock.advance(TTL + 1);
    await dispatchOf(t).reaper.runOnce();
    const cancel = await w.nextCancel();
    expect(cancel).toMatchObject({ jobId: job.id, leaseId: first.leaseId });

    // Silent for a whole TTL: the placement round the requeue started offers it nothing (the job stays
    // QUEUED); its heartbeat makes it eligible again and wakes dispatch.
    await dispatchOf(t).dispatcher.idle();
    expect(rowOf(t, job.id).status).toBe("QUEUED");
    expect(w.pending().filter((m) => m.case === "offer")).toEqual([]);
    w.send({ case: "heartbeat", value: { leaseIds: [] } });
    const second = await w.nextOffer();
    expect(second.attempt).toBe(2);
    expect(second.leaseId).not.toBe(first.leaseId);
    clock.advance(TTL + 1);
    await dispatchOf(t).reaper.runOnce();
    const row = rowOf(t, job.id);
    expect(row.status).toBe("FAILED");
    expect(row.error).toContain('worker "flaky" was lost');
    expect(row.leaseId).toBeNull();
  });

  test("a job whose lease expired on a silent worker is re-offered to a live one, never back to the silent one", async () => {
    const silent = await connect({ name: "silent", slots: 4 });
    const job = await createJob(jobs, "synthetic", { maxAttempts: 3 });
    const first = await silent.nextOffer();
    const live = await connect({ name: "live" });
    clock.advance(TTL / 2 + 1);
    live.send({ case: "heartbeat", value: { leaseIds: [] } });
    await barrier(live);
    clock.advance(TTL / 2 + 1);
    await dispatchOf(t).reaper.runOnce();
    await dispatchOf(t).dispatcher.idle();
    const second = await live.nextOffer();
    expect(second).toMatchObject({ jobId: job.id, attempt: 2 });
    expect(second.leaseId).not.toBe(first.leaseId);
    expect(silent.pending().filter((m) => m.case === "offer")).toEqual([]);
    // The live worker finishes it; the silent one's own lease is gone and it is never offered the job again.
    live.upload(second, 0, new Uint8Array([1, 2, 3]));
    expect((await live.complete(second)).ok).toBe(true);
    expect(rowOf(t, job.id).status).toBe("SUCCEEDED");
    const workers = await listWorkers();
    expect(workers.find((x) => x.name === "silent")?.slotsInUse).toBe(0);
  });

  test("heartbeats keep a lease alive past its TTL; a stale lease cannot complete or fail", async () => {
    const a = await connect({ name: "a" });
    const job = await createJob(jobs);
    const offer = await a.nextOffer();
    for (let i = 0; i < 3; i++) {
      clock.advance(TTL / 2 + 100);
      a.send({ case: "heartbeat", value: { leaseIds: [offer.leaseId] } });
      await barrier(a);
      await dispatchOf(t).reaper.runOnce();
    }
    expect(rowOf(t, job.id).status).toBe("OFFERED");

    clock.advance(TTL + 1);
    await dispatchOf(t).reaper.runOnce();
    await a.nextCancel();
    const b = await connect({ name: "b" });
    // The requeued job may go back to a (free again) or to b; whoever gets it holds the only current lease.
    const holder = await Promise.race([a.nextOffer().then((o) => ({ w: a, o })), b.nextOffer().then((o) => ({ w: b, o }))]);
    expect(holder.o.attempt).toBe(2);
    a.upload(offer, 0, new Uint8Array([1, 2, 3]));
    expect(await a.complete(offer)).toMatchObject({ ok: false, code: "failed_precondition" });
    expect(await a.fail(offer, "late")).toMatchObject({ ok: false, code: "failed_precondition" });
    expect(rowOf(t, job.id).status).toBe("OFFERED");
    holder.w.upload(holder.o, 0, new Uint8Array([4]));
    expect((await holder.w.complete(holder.o)).ok).toBe(true);
    expect(rowOf(t, job.id)).toMatchObject({ status: "SUCCEEDED", attempts: 2 });
  });

  test("cancel of a running job reaches its worker, and its late complete is refused", async () => {
    const w = await connect();
    const job = await createJob(jobs);
    const offer = await w.nextOffer();
    w.send({ case: "progress", value: { jobId: job.id, leaseId: offer.leaseId, progress: { step: 1, steps: 10 } } });
    await barrier(w);
    expect(rowOf(t, job.id).status).toBe("RUNNING");
    const res = await jobs.cancelJob({ jobId: job.id });
    expect(res.job?.status).toBe(JobStatus.CANCELLED);
    const cancel = await w.nextCancel();
    expect(cancel).toMatchObject({ jobId: job.id, leaseId: offer.leaseId });
    w.upload(offer, 0, new Uint8Array([9]));
    expect(await w.complete(offer)).toMatchObject({ ok: false, code: "failed_precondition" });
    expect(rowOf(t, job.id).status).toBe("CANCELLED");
    expect((await listWorkers())[0]?.slotsInUse).toBe(0);
  });

  test("decline requeues without counting the attempt and not back to the same worker", async () => {
    const a = await connect({ name: "a" });
    const job = await createJob(jobs);
    const offer = await a.nextOffer();
    a.send({ case: "decline", value: { jobId: job.id, leaseId: offer.leaseId, reason: "disk full" } });
    expect((await a.receipt(job.id, offer.leaseId)).ok).toBe(true);
    expect(rowOf(t, job.id)).toMatchObject({ status: "QUEUED", attempts: 0 });
    await barrier(a);
    await dispatchOf(t).dispatcher.idle();
    expect(a.pending().filter((m) => m.case === "offer")).toEqual([]);
    const b = await connect({ name: "b" });
    const again = await b.nextOffer();
    expect(again).toMatchObject({ jobId: job.id, attempt: 1 });
  });

  test("a draining worker gets no new offers, finishes what it holds and is gone when its stream ends", async () => {
    const a = await connect({ name: "a", slots: 2 });
    const first = await createJob(jobs);
    const offer = await a.nextOffer();
    a.send({ case: "drain", value: {} });
    await barrier(a);
    expect((await listWorkers())[0]).toMatchObject({ name: "a", draining: true, jobIds: [first.id] });
    const second = await createJob(jobs);
    await dispatchOf(t).dispatcher.idle();
    expect(a.pending().filter((m) => m.case === "offer")).toEqual([]);
    a.upload(offer, 0, new Uint8Array([1]));
    expect((await a.complete(offer)).ok).toBe(true);
    await a.close();
    expect(await listWorkers()).toEqual([]);
    const b = await connect({ name: "b" });
    expect((await b.nextOffer()).jobId).toBe(second.id);
  });

  test("a worker that reconnects within the TTL and names its leases keeps them", async () => {
    const a = await connect({ name: "a" });
    const job = await createJob(jobs);
    const offer = await a.nextOffer();
    await a.close();
    expect(await listWorkers()).toEqual([]);
    clock.advance(TTL / 2);
    const again = await connect({ name: "a", leaseIds: [offer.leaseId, "f".repeat(32)] });
    expect(again.welcome.keptLeaseIds).toEqual([offer.leaseId]);
    expect(again.welcome.lostLeaseIds).toEqual(["f".repeat(32)]);
    expect((await listWorkers())[0]?.jobIds).toEqual([job.id]);
    clock.advance(TTL / 2 + 100);
    await dispatchOf(t).reaper.runOnce();
    expect(rowOf(t, job.id).status).toBe("OFFERED");
    again.upload(offer, 0, new Uint8Array([7]));
    expect((await again.complete(offer)).ok).toBe(true);
    expect(rowOf(t, job.id).status).toBe("SUCCEEDED");
  });

  test("a session that ends without drain leaves its leases to expire", async () => {
    const a = await connect({ name: "gone" });
    const job = await createJob(jobs);
    await a.nextOffer();
    await a.close();
    expect(rowOf(t, job.id).status).toBe("OFFERED");
    clock.advance(TTL + 1);
    await dispatchOf(t).reaper.runOnce();
    expect(rowOf(t, job.id)).toMatchObject({ status: "QUEUED", attempts: 1 });
    expect(rowOf(t, job.id).error).toContain('worker "gone" was lost');
  });
});
