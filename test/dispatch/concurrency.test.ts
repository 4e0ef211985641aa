import { afterAll, beforeAll, expect, test } from "bun:test";
import { createClient, type Client } from "@connectrpc/connect";
import { createHash } from "node:crypto";
import type { Offer } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { sqliteOf, startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { createJob } from "./fixtures.js";
import { h2Transport, SimWorker } from "./sim-worker.js";

const WORKERS = 8;
const POLLERS = 2;
const JOBS = 200;

let t: TestStudio;
let jobs: Client<typeof JobService>;

beforeAll(async () => {
  t = await startTestStudio();
  jobs = t.client(JobService);
});
afterAll(() => t.stop());

test(`${WORKERS} streaming workers and ${POLLERS} pollers share ${JOBS} jobs: each offered once at a time, all complete`, async () => {
  const holders = new Map<string, string>(); // job id → who holds it now
  const offers: string[] = [];
  const doubles: string[] = [];
  let completed = 0;
  let allDone!: () => void;
  const finished = new Promise<void>((r) => (allDone = r));

  const take = (who: string, jobId: string) => {
    if (holders.has(jobId)) doubles.push(`${jobId} to ${who} while ${holders.get(jobId)} holds it`);
    holders.set(jobId, who);
    offers.push(jobId);
  };
  const done = (jobId: string) => {
    holders.delete(jobId);
    if (++completed === JOBS) allDone();
  };
  const payload = (jobId: string) => new TextEncoder().encode(`output of ${jobId}`);

  const workers = await Promise.all(
    Array.from({ length: WORKERS }, (_, i) => SimWorker.connect(h2Transport(t.url), { name: `w${i}`, slots: 2, engines: [ModelEngine.SYNTHETIC] })),
  );
  const streaming = workers.map(async (w, i) => {
    const running: Promise<void>[] = [];
    for (;;) {
      let offer: Offer;
      try {
        offer = await w.nextOffer();
      } catch {
        break; // the session ended: the test is over
      }
      take(`w${i}`, offer.jobId);
      running.push(
        (async () => {
          w.upload(offer, 0, payload(offer.jobId), { mimeType: "image/png" });
          const r = await w.complete(offer);
          expect(r).toMatchObject({ ok: true });
          done(offer.jobId);
        })(),
      );
    }
    await Promise.all(running);
  });
  const pollers = Array.from({ length: POLLERS }, async (_, i) => {
    const client = createClient(WorkerService, h2Transport(t.url, "grpc"));
    while (completed < JOBS) {
      const { claim } = await client.claimJob({ workerName: `p${i}`, engines: [ModelEngine.SYNTHETIC], waitMs: 100 });
      if (!claim) continue;
      take(`p${i}`, claim.jobId);
      const data = payload(claim.jobId);
      await client.completeJob({
        jobId: claim.jobId,
        leaseId: claim.leaseId,
        outputs: [{ index: 0, mimeType: "image/png", data, sha256: createHash("sha256").update(data).digest("hex") }],
      });
      done(claim.jobId);
    }
  });

  const created = await Promise.all(Array.from({ length: JOBS }, () => createJob(jobs)));
  await finished;
  await Promise.all(workers.map((w) => w.close()));
  await Promise.all([...streaming, ...pollers]);

  expect(doubles).toEqual([]);
  expect(offers).toHaveLength(JOBS);
  expect(new Set(offers).size).toBe(JOBS);
  const rows = sqliteOf(t.studio)
    .query("SELECT status, attempts, count(*) AS n FROM graphicsJobs GROUP BY status, attempts")
    .all();
  expect(rows).toEqual([{ status: "SUCCEEDED", attempts: 1, n: JOBS }]);
  expect(new Set(created.map((j) => j.id))).toEqual(new Set(offers));
}, 60_000);
