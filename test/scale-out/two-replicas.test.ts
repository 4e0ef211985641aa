import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createClient, type Client } from "@connectrpc/connect";
import { createHash } from "node:crypto";
import { JobStatus, WaitReason, type Job } from "../../gen/studio/v1/job_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { transportFor } from "../auth/support.js";
import { createJob } from "../dispatch/fixtures.js";
import { h2Transport, SimWorker } from "../dispatch/sim-worker.js";
import { freshPgDatabase } from "../helpers/pg-storage.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";

/**
 * Two studio replicas on one PostgreSQL database (in this process, each its own pool,
 * listener and worker registry), with workers on each. Placement's safety sweep is
 * stretched to a minute, so every cross-replica effect below travels by notification.
 */
let a: TestStudio;
let b: TestStudio;
const workers: SimWorker[] = [];

const statusOrder = [JobStatus.QUEUED, JobStatus.OFFERED, JobStatus.RUNNING, JobStatus.SUCCEEDED];

beforeAll(async () => {
  const databaseUrl = await freshPgDatabase();
  const tuning = { replicaSweepMs: 60_000 };
  [a, b] = await Promise.all([startTestStudio({ databaseUrl }, { tuning }), startTestStudio({ databaseUrl }, { tuning })]);
});

afterAll(async () => {
  for (const w of workers) await w.close().catch(() => {});
  await Promise.all([a?.stop(), b?.stop()]);
});

async function worker(on: TestStudio, name: string, token?: string): Promise<SimWorker> {
  const transport = token ? transportFor(on.url, token) : h2Transport(on.url);
  const w = await SimWorker.connect(transport, { name, slots: 1 });
  workers.push(w);
  return w;
}

const jobsOf = (t: TestStudio, token?: string) => createClient(JobService, token ? transportFor(t.url, token) : h2Transport(t.url));

describe("two replicas on one PostgreSQL", () => {
  test("a job created on A is offered at once to the idle worker on B; its output is served by A", async () => {
    const wb = await worker(b, "on-b");
    const job = await createJob(jobsOf(a));
    const offer = await wb.nextOffer();
    expect(offer.jobId).toBe(job.id);
    const png = new Uint8Array(3000).map((_, i) => i & 0xff);
    wb.upload(offer, 0, png);
    expect((await wb.complete(offer)).ok).toBe(true);
    const done = (await jobsOf(a).getJob({ jobId: job.id })).job!;
    expect(done.status).toBe(JobStatus.SUCCEEDED);
    expect(done.workerName).toBe("on-b");
    const parts: Uint8Array[] = [];
    for await (const r of jobsOf(a).getJobOutput({ jobId: job.id, index: 0 })) if (r.chunk.length) parts.push(r.chunk);
    expect(Buffer.concat(parts).equals(Buffer.from(png))).toBe(true);
    const http = await fetch(`${a.url}/jobs/${job.id}/outputs/0`);
    expect(http.status).toBe(200);
    expect(createHash("sha256").update(new Uint8Array(await http.arrayBuffer())).digest("hex")).toBe(done.outputs[0]!.sha256);
    await wb.close();
  });

  test("CancelJob on A reaches the worker on B", async () => {
    const wb = await worker(b, "cancel-b");
    const job = await createJob(jobsOf(a));
    const offer = await wb.nextOffer();
    wb.send({ case: "accept", value: { jobId: offer.jobId, leaseId: offer.leaseId } });
    expect((await wb.receipt(offer.jobId, offer.leaseId)).ok).toBe(true);
    await jobsOf(a).cancelJob({ jobId: job.id });
    const cancel = await wb.nextCancel();
    expect(cancel).toMatchObject({ jobId: job.id, leaseId: offer.leaseId });
    await wb.close();
  });

  test("WatchJobs on A sees B's changes, in order for each job; ListWorkers on A lists B's workers", async () => {
    const wb = await worker(b, "watched-b");
    const abort = new AbortController();
    const seen = new Map<string, JobStatus[]>();
    const watching = (async () => {
      try {
        for await (const r of jobsOf(a).watchJobs({}, { signal: abort.signal })) {
          const list = seen.get(r.job!.id) ?? [];
          list.push(r.job!.status);
          seen.set(r.job!.id, list);
        }
      } catch {
        // aborted
      }
    })();
    let listed: string[] = [];
    for (let i = 0; i < 100 && !listed.includes("watched-b"); i++) {
      listed = (await createClient(WorkerService, h2Transport(a.url)).listWorkers({})).workers.map((w) => w.name);
      if (!listed.includes("watched-b")) await Bun.sleep(50);
    }
    expect(listed).toContain("watched-b");
    const made: Job[] = [];
    for (let i = 0; i < 3; i++) {
      made.push(await createJob(jobsOf(b)));
      const offer = await wb.nextOffer();
      wb.send({ case: "accept", value: { jobId: offer.jobId, leaseId: offer.leaseId } });
      wb.upload(offer, 0, new Uint8Array([i, 1, 2]));
      expect((await wb.complete(offer)).ok).toBe(true);
    }
    for (let i = 0; i < 200 && made.some((j) => seen.get(j.id)?.at(-1) !== JobStatus.SUCCEEDED); i++) await Bun.sleep(25);
    abort.abort();
    await watching;
    for (const j of made) {
      const statuses = seen.get(j.id)!;
      expect(statuses.at(-1)).toBe(JobStatus.SUCCEEDED);
      const ranks = statuses.map((s) => statusOrder.indexOf(s));
      expect(ranks).toEqual([...ranks].sort((x, y) => x - y));
    }
    await wb.close();
  });

  test("on A, a queued job's wait counts the busy worker on B, and WatchWorkers on A shows B's worker taking the job", async () => {
    for (const w of workers.splice(0)) await w.close().catch(() => {});
    const wb = await worker(b, "busy-b");
    const blocker = await createJob(jobsOf(b));
    const offer = await wb.nextOffer();
    expect(offer.jobId).toBe(blocker.id);
    const waiting = await createJob(jobsOf(a));
    const abort = new AbortController();
    try {
      for await (const r of createClient(WorkerService, h2Transport(a.url)).watchWorkers({}, { signal: abort.signal }))
        if (r.workers.some((w) => w.name === "busy-b" && w.slotsInUse === 1 && w.jobIds[0] === blocker.id)) break;
      // A watch on A sends the job again once its wait changes (B's list reaches A within about a second).
      for await (const r of jobsOf(a).watchJobs({ jobIds: [waiting.id], includeSnapshot: true }, { signal: abort.signal })) {
        if (r.job?.waiting?.reason !== WaitReason.WORKERS_BUSY) continue;
        expect(r.job.waiting).toMatchObject({ capableWorkers: 1, connectedWorkers: 1, message: "the 1 worker that runs synthetic is busy; 1st in line" });
        break;
      }
    } finally {
      abort.abort();
    }
    wb.upload(offer, 0, new Uint8Array([1]));
    expect((await wb.complete(offer)).ok).toBe(true);
    const next = await wb.nextOffer();
    expect(next.jobId).toBe(waiting.id);
    wb.upload(next, 0, new Uint8Array([2]));
    expect((await wb.complete(next)).ok).toBe(true);
  }, 20_000);

  test("a token revoked on A ends its session, its watch and its waiting ClaimJob on B", async () => {
    // The first token (admin) turns auth on for good on both replicas.
    const admin = (await createClient(TokenService, h2Transport(a.url)).createToken({ name: "admin", role: TokenRole.ADMIN })).secret;
    const tokens = createClient(TokenService, transportFor(a.url, admin));
    const w = await tokens.createToken({ name: "gpu", role: TokenRole.WORKER });
    const c = await tokens.createToken({ name: "viewer", role: TokenRole.CLIENT });
    const wb = await worker(b, "revoked-b", w.secret);
    const watch = jobsOf(b, c.secret).watchJobs({})[Symbol.asyncIterator]();
    const watchEnd = watch.next().then(
      () => "message",
      (err: unknown) => String(err),
    );
    // A polling worker (no session) waiting in ClaimJob on B with the same worker token.
    const poller = createClient(WorkerService, transportFor(b.url, w.secret, { httpVersion: "1.1" }));
    expect((await poller.claimJob({ workerName: "poller-b", engines: [ModelEngine.LLAMA_CPP], waitMs: 0 })).claim).toBeUndefined();
    const pollEnd = poller.claimJob({ workerName: "poller-b", engines: [ModelEngine.LLAMA_CPP], waitMs: 30_000 }).then(
      () => "answered",
      (err: unknown) => String(err),
    );
    await tokens.revokeToken({ id: w.token!.id });
    await tokens.revokeToken({ id: c.token!.id });
    await wb.done;
    expect(await watchEnd).toContain("revoked");
    expect(await pollEnd).toContain("[unauthenticated]");
    // The revoked tokens are refused on B for new calls too.
    const later = createClient(JobService, transportFor(b.url, c.secret, { httpVersion: "1.1" }));
    await expect(later.listJobs({})).rejects.toThrow(/revoked/);
  });
});

export type { Client };
