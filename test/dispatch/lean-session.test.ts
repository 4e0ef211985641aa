import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import type { Client } from "@connectrpc/connect";
import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { JobPhase, JobStatus } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { MAX_INLINE_OUTPUT_BYTES } from "../../server/dispatch/session.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { createJob, rowOf, sha } from "./fixtures.js";
import { h2Transport, SimWorker } from "./sim-worker.js";

let t: TestStudio;
let jobs: Client<typeof JobService>;
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
const digest = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const storedFiles = () => readdirSync(join(t.dataDir, "outputs")).filter((d) => d !== ".tmp");

beforeEach(async () => {
  t = await startTestStudio({ maxOutputBytes: 3 * 1024 * 1024 });
  jobs = t.client(JobService);
});
afterEach(async () => {
  for (const w of workers.splice(0)) await w.close().catch(() => {});
  await t.stop();
});

describe("lean session (issue 14)", () => {
  test("the offer is the lease, outputs ride inline in the complete, and its receipt and the next offer come as one batch", async () => {
    const w = await connect({ acceptsBatches: true });
    expect(w.welcome.maxInlineOutputBytes).toBe(MAX_INLINE_OUTPUT_BYTES);
    const first = await createJob(jobs);
    const second = await createJob(jobs);
    const offer = await w.nextOffer();
    expect(offer.jobId).toBe(first.id);
    expect(rowOf(t, first.id).status).toBe("OFFERED");

    // No accept: the complete alone, with the output in it.
    const out = bytes(3000);
    const framesBefore = w.frames.length;
    expect(await w.completeInline(offer, [{ data: out }])).toMatchObject({ ok: true, code: "" });
    const next = await w.nextOffer();
    expect(next.jobId).toBe(second.id);
    const batch = w.frames[framesBefore]!;
    expect(batch.case).toBe("batch");
    if (batch.case === "batch")
      expect(batch.value.messages.map((m) => [m.message.case, (m.message.value as { jobId?: string } | undefined)?.jobId])).toEqual([
        ["receipt", first.id],
        ["offer", second.id],
      ]);

    const done = (await jobs.getJob({ jobId: first.id })).job!;
    expect(done.status).toBe(JobStatus.SUCCEEDED);
    expect(done.outputs.map((o) => [o.index, Number(o.sizeBytes), o.mimeType, o.sha256])).toEqual([[0, 3000, "image/png", digest(out)]]);
    const res = await fetch(`${t.url}/jobs/${first.id}/outputs/0`);
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(out))).toBe(true);

    // Exactly once: the same complete again is refused and changes nothing.
    expect(await w.completeInline(offer, [{ data: bytes(10) }])).toMatchObject({ ok: false, code: "failed_precondition" });
    expect((await jobs.getJob({ jobId: first.id })).job!.outputs[0]!.sha256).toBe(digest(out));

    // Chunks for one index and inline for another, in one complete.
    const batchOf2 = await createJob(jobs, "synthetic", { batchCount: 2 });
    expect(await w.completeInline(next, [{ data: bytes(5, 5) }])).toMatchObject({ ok: true });
    const two = await w.nextOffer();
    expect(two.jobId).toBe(batchOf2.id);
    const big = bytes(20_000, 7);
    w.upload(two, 0, big, { mimeType: "image/png" });
    expect(await w.completeInline(two, [{ index: 1, data: bytes(7, 9) }], 2)).toMatchObject({ ok: true });
    expect((await jobs.getJob({ jobId: batchOf2.id })).job!.outputs.map((o) => Number(o.sizeBytes))).toEqual([20_000, 7]);
  });

  test("inline outputs are checked like uploaded ones, and a refused complete stores nothing", async () => {
    const w = await connect({ acceptsBatches: true });
    const job = await createJob(jobs);
    const offer = await w.nextOffer();
    const data = bytes(2048);

    const wrong = await w.completeInline(offer, [{ data, sha256: sha("c") }]);
    expect(wrong).toMatchObject({ ok: false, code: "invalid_argument" });
    expect(wrong.message).toContain("the bytes hash to");

    const tooBig = await w.completeInline(offer, [{ data: bytes(MAX_INLINE_OUTPUT_BYTES + 1) }]);
    expect(tooBig).toMatchObject({ ok: false, code: "resource_exhausted" });
    expect(tooBig.message).toContain("send them as output chunks");

    const outOfRange = await w.completeInline(offer, [{ data, index: 3 }], 1);
    expect(outOfRange).toMatchObject({ ok: false, code: "invalid_argument" });
    expect(outOfRange.message).toContain("output index 3 is out of range");
    const outOfTask = await w.completeInline(offer, [{ data }, { data, index: 1 }]);
    expect(outOfTask).toMatchObject({ ok: false, code: "invalid_argument" });
    expect(outOfTask.message).toContain("output_count is 2, the task asks for 1");

    const twice = await w.completeInline(offer, [{ data }, { data, index: 0 }]);
    expect(twice).toMatchObject({ ok: false, code: "invalid_argument" });
    expect(twice.message).toContain("sent twice");

    const count = await w.completeInline(offer, [{ data }], 2);
    expect(count).toMatchObject({ ok: false, code: "invalid_argument" });
    expect(count.message).toContain("output_count is 2, the task asks for 1");

    const badMime = await w.completeInline(offer, [{ data, mimeType: "image/png; charset=x" }]);
    expect(badMime).toMatchObject({ ok: false, code: "invalid_argument" });

    w.upload(offer, 0, data, { mimeType: "image/png" });
    const both = await w.completeInline(offer, [{ data }]);
    expect(both).toMatchObject({ ok: false, code: "invalid_argument" });
    expect(both.message).toContain("both as chunks and inline");

    expect(rowOf(t, job.id).status).toBe("OFFERED");
    expect(storedFiles()).toEqual([]);

    // A stale lease is failed_precondition whatever the outputs are.
    await jobs.cancelJob({ jobId: job.id });
    await w.nextCancel();
    const stale = await w.completeInline(offer, [{ data, sha256: sha("c") }]);
    expect(stale).toMatchObject({ ok: false, code: "failed_precondition" });
    const staleGood = await w.completeInline(offer, [{ data }]);
    expect(staleGood).toMatchObject({ ok: false, code: "failed_precondition" });
    expect(storedFiles()).toEqual([]);
  });

  test("the last progress reported before the complete is stored, not dropped with the lease", async () => {
    const w = await connect({ acceptsBatches: true });
    const job = await createJob(jobs);
    const offer = await w.nextOffer();
    const report = (phase: JobPhase, step: number) =>
      w.send({ case: "progress", value: { jobId: offer.jobId, leaseId: offer.leaseId, progress: { phase, step, steps: 2 } } });
    report(JobPhase.DOWNLOADING, 0);
    report(JobPhase.RUNNING, 1);
    report(JobPhase.RUNNING, 2); // all within the studio's throttle window
    expect(await w.completeInline(offer, [{ data: bytes(10) }])).toMatchObject({ ok: true });
    const done = (await jobs.getJob({ jobId: job.id })).job!;
    expect(done.status).toBe(JobStatus.SUCCEEDED);
    expect([done.progress?.phase, done.progress?.step]).toEqual([JobPhase.RUNNING, 2]);
  });

  test("a worker speaking today's protocol (accept, chunks, complete; no batches) gets a receipt for each and every message alone", async () => {
    const w = await connect();
    expect(w.welcome.maxInlineOutputBytes).toBeGreaterThan(0);
    const first = await createJob(jobs);
    const second = await createJob(jobs);
    const offer = await w.nextOffer();
    w.send({ case: "accept", value: { jobId: offer.jobId, leaseId: offer.leaseId } });
    expect((await w.receipt(first.id, offer.leaseId)).ok).toBe(true);
    expect(rowOf(t, first.id).status).toBe("RUNNING");
    const out = bytes(1024);
    w.upload(offer, 0, out, { mimeType: "image/png" });
    expect(await w.complete(offer, 1)).toMatchObject({ ok: true });
    const next = await w.nextOffer();
    expect(next.jobId).toBe(second.id);
    w.send({ case: "accept", value: { jobId: next.jobId, leaseId: next.leaseId } });
    expect((await w.receipt(second.id, next.leaseId)).ok).toBe(true);
    w.upload(next, 0, out, { mimeType: "image/png" });
    expect(await w.complete(next, 1)).toMatchObject({ ok: true });
    expect(w.frames.map((m) => m.case)).toEqual(["welcome", "offer", "receipt", "receipt", "offer", "receipt", "receipt"]);
    for (const id of [first.id, second.id]) expect((await jobs.getJob({ jobId: id })).job!.status).toBe(JobStatus.SUCCEEDED);
  });
});
