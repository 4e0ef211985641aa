import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { JobPhase, JobStatus } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { createJob, rowOf } from "./fixtures.js";
import { h2Transport } from "./sim-worker.js";

let t: TestStudio;
let jobs: Client<typeof JobService>;
let poller: Client<typeof WorkerService>;

async function codeOf(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error("expected the call to fail");
}

let baseline = 0;

/** Resolves once cond holds, checking on each macrotask turn (the server side has no event to await here). */
async function until(cond: () => boolean) {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

beforeEach(async () => {
  t = await startTestStudio({ maxOutputBytes: 1024 });
  jobs = t.client(JobService);
  // Pollers are plain unary clients: Connect JSON over HTTP/1.1.
  poller = createClient(WorkerService, t.connectTransport());
  baseline = t.studio.ctx.events.listenerCount;
});
afterEach(() => t.stop());

describe("polling API", () => {
  test("claim (long-poll woken by a new job), heartbeat, progress, complete with inline outputs", async () => {
    const waiting = poller.claimJob({ workerName: "poller-1", engines: [ModelEngine.SYNTHETIC], waitMs: 10_000 });
    const job = await createJob(jobs, "synthetic", { batchCount: 2 });
    const { claim } = await waiting;
    expect(claim?.jobId).toBe(job.id);
    expect(claim?.modelSource?.engine).toBe(ModelEngine.SYNTHETIC);
    expect(rowOf(t, job.id)).toMatchObject({ status: "OFFERED", leaseWorker: "poller-1", attempts: 1 });
    const lease = { jobId: job.id, leaseId: claim!.leaseId };

    const hb = await poller.heartbeat({ leaseIds: [claim!.leaseId, "nope"] });
    expect(hb.renewedLeaseIds).toEqual([claim!.leaseId]);
    expect(hb.lostLeaseIds).toEqual(["nope"]);

    await poller.reportProgress({ ...lease, progress: { phase: JobPhase.RUNNING, step: 2, steps: 4 } });
    expect(rowOf(t, job.id).status).toBe("RUNNING");

    const a = new TextEncoder().encode("first");
    const b = new TextEncoder().encode("second");
    const digest = (d: Uint8Array) => createHash("sha256").update(d).digest("hex");
    const wrong = await codeOf(
      poller.completeJob({ ...lease, outputs: [{ index: 0, mimeType: "image/png", data: a, sha256: digest(b) }, { index: 1, mimeType: "image/png", data: b, sha256: digest(b) }] }),
    );
    expect(wrong.code).toBe(Code.InvalidArgument);
    expect(wrong.message).toContain("outputs[0].sha256");
    const short = await codeOf(poller.completeJob({ ...lease, outputs: [{ index: 0, mimeType: "image/png", data: a, sha256: digest(a) }] }));
    expect(short.code).toBe(Code.InvalidArgument);
    expect(short.message).toContain("the task asks for 2");
    const big = new Uint8Array(2048);
    const over = await codeOf(
      poller.completeJob({ ...lease, outputs: [{ index: 0, mimeType: "image/png", data: big, sha256: digest(big) }, { index: 1, mimeType: "image/png", data: b, sha256: digest(b) }] }),
    );
    expect(over.code).toBe(Code.ResourceExhausted);
    expect(over.message).toContain("over the studio's limit of 1024 bytes");
    expect(existsSync(join(t.dataDir, "outputs", digest(big).slice(0, 2), digest(big)))).toBe(false);
    expect(rowOf(t, job.id).status).toBe("RUNNING");

    const done = await poller.completeJob({
      ...lease,
      outputs: [
        { index: 1, mimeType: "image/png", data: b, sha256: digest(b) },
        { index: 0, mimeType: "image/png", data: a, sha256: digest(a) },
      ],
    });
    expect(done.job?.status).toBe(JobStatus.SUCCEEDED);
    expect(done.job?.outputs.map((o) => o.sha256)).toEqual([digest(a), digest(b)]);
    expect(await (await fetch(`${t.url}/jobs/${job.id}/outputs/1`)).text()).toBe("second");

    const stale = await codeOf(poller.failJob({ ...lease, error: "late", retryable: true }));
    expect(stale.code).toBe(Code.FailedPrecondition);
    expect(rowOf(t, job.id).status).toBe("SUCCEEDED");
  });

  test("retryable failures requeue until max attempts; engines filter; no job within wait returns no claim", async () => {
    const none = await poller.claimJob({ workerName: "p", engines: [ModelEngine.SYNTHETIC], waitMs: 50 });
    expect(none.claim).toBeUndefined();
    const job = await createJob(jobs, "synthetic", { maxAttempts: 2 });
    expect((await poller.claimJob({ workerName: "p", engines: [ModelEngine.LLAMA_CPP] })).claim).toBeUndefined();
    const c1 = (await poller.claimJob({ workerName: "p", engines: [ModelEngine.SYNTHETIC] })).claim!;
    const f1 = await poller.failJob({ jobId: job.id, leaseId: c1.leaseId, error: "oom", retryable: true });
    expect(f1.job?.status).toBe(JobStatus.QUEUED);
    const c2 = (await poller.claimJob({ workerName: "p", engines: [ModelEngine.SYNTHETIC] })).claim!;
    expect(c2.attempt).toBe(2);
    const f2 = await poller.failJob({ jobId: job.id, leaseId: c2.leaseId, error: "oom again", retryable: true });
    expect(f2.job).toMatchObject({ status: JobStatus.FAILED, error: "oom again" });
  });

  test("shutdown answers a waiting long-poll at once with no claim", async () => {
    const waiting = poller.claimJob({ workerName: "p", engines: [ModelEngine.SYNTHETIC], waitMs: 30_000 });
    await until(() => t.studio.ctx.events.listenerCount > baseline);
    await t.stop();
    expect((await waiting).claim).toBeUndefined();
  });

  test("bad requests name the field", async () => {
    expect((await codeOf(poller.claimJob({ workerName: "p", engines: [ModelEngine.SYNTHETIC], waitMs: 30_001 }))).message).toContain("wait_ms must be at most 30000");
    expect((await codeOf(poller.claimJob({ workerName: "", engines: [ModelEngine.SYNTHETIC] }))).code).toBe(Code.InvalidArgument);
    expect((await codeOf(poller.claimJob({ workerName: "p", engines: [] }))).message).toContain("engines must list");
    expect((await codeOf(poller.reportProgress({ jobId: "x", leaseId: "y" }))).code).toBe(Code.FailedPrecondition);
  });
});
