import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { JobStatus } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { createJob } from "../dispatch/fixtures.js";
import { h2Transport, SimWorker } from "../dispatch/sim-worker.js";
import { startTestPg, type TestPg } from "../helpers/test-pg.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";

/**
 * PostgreSQL goes away under a running replica (its own private cluster: stopping it must not
 * touch the run's shared one). Meanwhile /readyz says not ready and calls fail fast with
 * UNAVAILABLE; once it is back the replica serves again without a restart, and the job a worker
 * held across the outage commits exactly once.
 */
let pg: TestPg;
let t: TestStudio;

beforeAll(async () => {
  pg = await startTestPg();
  t = await startTestStudio({ databaseUrl: await pg.createDatabase("restart") });
});
afterAll(async () => {
  await t?.stop();
  pg?.destroy();
});

async function readyz(): Promise<number> {
  return (await fetch(`${t.url}/readyz`, { signal: AbortSignal.timeout(5000) })).status;
}

async function until(what: string, check: () => Promise<boolean>, deadlineMs = 20_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${deadlineMs} ms`);
    await Bun.sleep(100);
  }
}

describe("PostgreSQL restarted under a replica", () => {
  test("not ready and UNAVAILABLE while it is down, serving again after, the held job committed once", async () => {
    const jobs = createClient(JobService, h2Transport(t.url));
    const w = await SimWorker.connect(h2Transport(t.url), { name: "survivor", slots: 1 });
    const job = await createJob(jobs);
    const offer = await w.nextOffer();
    expect(await readyz()).toBe(200);

    pg.stop("fast");
    await until("/readyz answering 503", async () => (await readyz()) === 503);
    const started = Date.now();
    const err = await jobs.listJobs({}).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.Unavailable);
    // Fails fast: a refused connection is an answer, not a wait for the 30 s statement timeout.
    expect(Date.now() - started).toBeLessThan(10_000);

    pg.start();
    await until("/readyz answering 200 again", async () => (await readyz()) === 200);
    expect((await jobs.getJob({ jobId: job.id })).job?.status).toBe(JobStatus.OFFERED);

    // The worker's session may have ended with the database; if so it reconnects naming its lease,
    // keeps it (back well within the TTL) and completes on the new session. Either way: once.
    let session = w;
    w.upload(offer, 0, new Uint8Array([1, 2, 3]));
    let receipt = await w.complete(offer).catch(() => undefined);
    if (!receipt?.ok) {
      session = await SimWorker.connect(h2Transport(t.url), { name: "survivor", slots: 1, leaseIds: [offer.leaseId] });
      expect(session.welcome.keptLeaseIds).toEqual([offer.leaseId]);
      session.upload(offer, 0, new Uint8Array([1, 2, 3]));
      receipt = await session.complete(offer);
    }
    expect(receipt.ok).toBe(true);
    expect((await session.complete(offer)).ok).toBe(false);
    const done = (await jobs.getJob({ jobId: job.id })).job!;
    expect(done.status).toBe(JobStatus.SUCCEEDED);
    expect(done.attempts).toBe(1);
    await session.close().catch(() => {});
    if (session !== w) await w.close().catch(() => {});
  }, 60_000);
});
