import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { filesUnder } from "../chaos/invariants.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { createJob, dispatchOf, manualClock, rowOf } from "./fixtures.js";
import { barrier, simWorkerPool } from "./sim-worker.js";

const TTL = 1000;
/** Over the in-memory threshold, so the staged bytes wait in a temp file. */
const big = (seed: number) => new Uint8Array(2 * 1024 * 1024 + 5).map((_, i) => (i * 31 + seed) & 0xff);
const digest = (d: Uint8Array) => createHash("sha256").update(d).digest("hex");

let t: TestStudio;
let clock: ReturnType<typeof manualClock>;
let dataDir: string;
const workers = simWorkerPool(() => t.url);
const connect = workers.connect;
const start = async () => {
  t = await startTestStudio({ leaseTtlMs: TTL, heartbeatIntervalMs: 200, maxOutputBytes: 4 * 1024 * 1024, dataDir }, { now: clock.now });
};
const stored = () => filesUnder(join(dataDir, "outputs")).filter((p) => !p.startsWith(".tmp/"));
const temps = () => filesUnder(join(dataDir, "outputs", ".tmp"));

beforeEach(async () => {
  clock = manualClock();
  dataDir = mkdtempSync(join(tmpdir(), "staging-test-"));
  await start();
});
afterEach(async () => {
  await workers.closeAll();
  await t.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("staged outputs", () => {
  test("wait in the temp area until complete, which stores them exactly once", async () => {
    const w = await connect();
    const job = await createJob(t.client(JobService));
    const offer = await w.nextOffer();
    const bytes = big(1);
    w.upload(offer, 0, bytes);
    await barrier(w);
    expect(dispatchOf(t).staging.stagedBytes(offer.leaseId)).toBe(bytes.byteLength);
    expect(temps()).toHaveLength(1);
    expect(stored()).toEqual([]);
    expect((await w.complete(offer)).ok).toBe(true);
    const sha = digest(bytes);
    expect(stored()).toEqual([`${sha.slice(0, 2)}/${sha}`]);
    expect(temps()).toEqual([]);
    expect(dispatchOf(t).staging.leaseCount).toBe(0);
    expect(rowOf(t, job.id).status).toBe("SUCCEEDED");
    expect((await w.complete(offer)).ok).toBe(false);
    expect(stored()).toHaveLength(1);
  });

  test("are dropped when the lease expires, is cancelled or declined: nothing stored, no temp file", async () => {
    const jobs = t.client(JobService);
    const w = await connect({ name: "dropper" });

    const expiring = await createJob(jobs, "synthetic", { maxAttempts: 1 });
    const o1 = await w.nextOffer();
    w.upload(o1, 0, big(2));
    await barrier(w);
    expect(temps()).toHaveLength(1);
    clock.advance(TTL + 1);
    await dispatchOf(t).reaper.runOnce();
    expect(rowOf(t, expiring.id).status).toBe("FAILED");
    expect(temps()).toEqual([]);

    w.send({ case: "heartbeat", value: { leaseIds: [] } });
    const cancelled = await createJob(jobs);
    const o2 = await w.nextOffer();
    expect(o2.jobId).toBe(cancelled.id);
    w.upload(o2, 0, big(3));
    await barrier(w);
    expect(temps()).toHaveLength(1);
    await jobs.cancelJob({ jobId: cancelled.id });
    await w.nextCancel();
    expect(temps()).toEqual([]);

    const declined = await createJob(jobs);
    const o3 = await w.nextOffer();
    expect(o3.jobId).toBe(declined.id);
    w.upload(o3, 0, big(4));
    w.send({ case: "decline", value: { jobId: o3.jobId, leaseId: o3.leaseId, reason: "disk full" } });
    expect((await w.receipt(o3.jobId, o3.leaseId)).ok).toBe(true);
    expect(temps()).toEqual([]);
    expect(stored()).toEqual([]);
    expect(dispatchOf(t).staging.leaseCount).toBe(0);
  });

  test("survive a reconnect that keeps the lease: the worker completes without uploading again", async () => {
    const w = await connect({ name: "flappy" });
    const job = await createJob(t.client(JobService));
    const offer = await w.nextOffer();
    const bytes = big(5);
    w.upload(offer, 0, bytes);
    await barrier(w);
    await w.close();
    const again = await connect({ name: "flappy", leaseIds: [offer.leaseId] });
    expect(again.welcome.keptLeaseIds).toEqual([offer.leaseId]);
    expect((await again.complete(offer)).ok).toBe(true);
    expect(rowOf(t, job.id).status).toBe("SUCCEEDED");
    expect(stored()).toEqual([`${digest(bytes).slice(0, 2)}/${digest(bytes)}`]);
  });

  test("startup sweeps temp files and stored outputs no job references (a crash between move and commit)", async () => {
    const w = await connect();
    const job = await createJob(t.client(JobService));
    const offer = await w.nextOffer();
    const kept = new Uint8Array([7, 7, 7]);
    w.upload(offer, 0, kept);
    expect((await w.complete(offer)).ok).toBe(true);
    const orphan = new Uint8Array([9, 9, 9, 9]);
    await dispatchOf(t).outputs.put(orphan, digest(orphan));
    writeFileSync(join(dataDir, "outputs", ".tmp", "left-by-a-crash.part"), "x");
    await workers.closeAll();
    await t.stop({ keepDataDir: true });

    await start();
    expect(stored()).toEqual([`${digest(kept).slice(0, 2)}/${digest(kept)}`]);
    expect(temps()).toEqual([]);
    expect(rowOf(t, job.id).status).toBe("SUCCEEDED");
  });
});
