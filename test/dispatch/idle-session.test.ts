import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Client } from "@connectrpc/connect";
import { JobStatus } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { readLines } from "../helpers/read-lines.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { createJob, manualClock, rowOf } from "./fixtures.js";
import { h2Transport, SimWorker } from "./sim-worker.js";

/**
 * Issue 17: a streaming worker that is connected but sends nothing (it holds no lease, so it owes no
 * heartbeat) keeps getting offers while its connection answers the studio's HTTP/2 PINGs; one whose
 * process is stopped answers none and gets no offers until it does again.
 */
const REPO = resolve(import.meta.dir, "../..");
let t: TestStudio | undefined;
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await t?.stop();
  t = undefined;
});

describe("an idle streaming worker", () => {
  test("silent for several lease TTLs with no lease: still offered the next job (its connection answers PINGs)", async () => {
    const clock = manualClock();
    const TTL = 1000;
    t = await startTestStudio({ leaseTtlMs: TTL, heartbeatIntervalMs: 100 }, { now: clock.now });
    const w = await SimWorker.connect(h2Transport(t.url), { name: "quiet" });
    cleanups.push(() => w.close().catch(() => {}));
    clock.advance(3 * TTL);
    const job = await createJob(t.client(JobService));
    const offer = await w.nextOffer();
    expect(offer.jobId).toBe(job.id);
    expect(rowOf(t, job.id).leaseWorker).toBe("quiet");
  }, 15_000);

  test("a worker process stopped past the TTL is offered nothing; once it runs again it is", async () => {
    const TTL = 800;
    t = await startTestStudio({ leaseTtlMs: TTL, heartbeatIntervalMs: 200 });
    const jobs: Client<typeof JobService> = t.client(JobService);
    const dir = mkdtempSync(join(tmpdir(), "idle-session-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const child = Bun.spawn(
      ["bun", join(REPO, "worker/main.ts"), "--server", t.url, "--name", "frozen", "--engines", "synthetic",
        "--cache-dir", join(dir, "cache"), "--work-dir", join(dir, "work"), "--progress", "log"],
      { stdout: "pipe", stderr: "inherit" },
    );
    cleanups.push(async () => {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
      await child.exited;
    });
    for await (const line of readLines(child.stdout)) if (line.includes("connected to the studio")) break;
    child.kill("SIGSTOP");
    // Two TTLs without a message or a PING answer: waiting for the studio's clock to pass them is the point.
    await Bun.sleep(2 * TTL);
    const live = await SimWorker.connect(h2Transport(t.url), { name: "live" });
    cleanups.push(() => live.close().catch(() => {}));
    const first = await createJob(jobs);
    const offer = await live.nextOffer();
    expect(offer.jobId).toBe(first.id);
    const listed = (await t.client(WorkerService).listWorkers({})).workers.map((x) => x.name).sort();
    expect(listed).toEqual(["frozen", "live"]);

    // Running again, the frozen worker answers the next PING and takes the next job (live is busy: one slot).
    child.kill("SIGCONT");
    const second = await createJob(jobs);
    const done = await watchUntilTerminal(jobs, second.id);
    expect(done.status).toBe(JobStatus.SUCCEEDED);
    expect(done.workerName).toBe("frozen");
  }, 30_000);
});

async function watchUntilTerminal(jobs: Client<typeof JobService>, jobId: string) {
  for await (const res of jobs.watchJobs({ jobIds: [jobId], includeSnapshot: true })) {
    const j = res.job;
    if (j && [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED].includes(j.status)) return j;
  }
  throw new Error("watch ended");
}
