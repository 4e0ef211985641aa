import { afterEach, beforeEach, expect, test } from "bun:test";
import type { SessionResponse } from "../../gen/studio/v1/worker_service_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { createJob, dispatchOf, rowOf } from "./fixtures.js";
import { h2Transport, SimWorker } from "./sim-worker.js";

let t: TestStudio;
const workers: SimWorker[] = [];

beforeEach(async () => {
  t = await startTestStudio({ leaseTtlMs: 60_000 });
});
afterEach(async () => {
  for (const w of workers.splice(0)) await w.close().catch(() => {});
  await t.stop();
});

async function connect(name: string) {
  const w = await SimWorker.connect(h2Transport(t.url), { name, slots: 1 });
  workers.push(w);
  return w;
}

/**
 * Records, in order, what the studio posts to the worker's stream and when placement
 * is woken: the receipt for a lease-ending message must be posted before the wake
 * that may fill the freed slot, whatever the scheduling of the placement round.
 */
function traceOf(name: string) {
  const d = dispatchOf(t);
  const entry = d.registry.all().find((w) => w.name === name)!;
  const trace: string[] = [];
  const send = entry.send;
  entry.send = (m: SessionResponse) => {
    trace.push(m.message.case ?? "none");
    return send(m);
  };
  const wake = d.dispatcher.wake.bind(d.dispatcher);
  d.dispatcher.wake = () => {
    trace.push("wake");
    wake();
  };
  return trace;
}

test("complete, fail and decline post their receipt before the offer for the freed slot and before placement is woken", async () => {
  const jobs = t.client(JobService);
  const w = await connect("one-slot");
  const trace = traceOf("one-slot");
  const a = await createJob(jobs);
  const b = await createJob(jobs, "synthetic", { maxAttempts: 1 });
  const c = await createJob(jobs);

  const first = await w.nextOffer();
  expect(first.jobId).toBe(a.id);
  w.upload(first, 0, new Uint8Array([1, 2, 3]));
  trace.length = 0;
  expect((await w.complete(first)).ok).toBe(true);
  // The complete leased the worker's next job in its own transaction: its offer follows the receipt, before any wake.
  expect(trace.slice(0, 3)).toEqual(["receipt", "offer", "wake"]);

  const second = await w.nextOffer();
  expect(second.jobId).toBe(b.id);
  trace.length = 0;
  expect((await w.fail(second, "gave up")).ok).toBe(true);
  expect(trace.slice(0, 2)).toEqual(["receipt", "wake"]);
  expect(rowOf(t, b.id).status).toBe("FAILED");

  const third = await w.nextOffer();
  expect(third.jobId).toBe(c.id);
  trace.length = 0;
  w.send({ case: "decline", value: { jobId: third.jobId, leaseId: third.leaseId, reason: "disk full" } });
  expect((await w.receipt(third.jobId, third.leaseId)).ok).toBe(true);
  expect(trace.slice(0, 2)).toEqual(["receipt", "wake"]);
});

test("a one-slot worker never receives an offer while it still awaits the receipt for its last job", async () => {
  const jobs = t.client(JobService);
  const w = await connect("strict");
  const n = 12;
  for (let i = 0; i < n; i++) await createJob(jobs, "synthetic", { maxAttempts: 1 });
  let awaiting: string | undefined;
  let finished = 0;
  while (finished < n) {
    const m = await w.take(() => true);
    if (m.case === "receipt") {
      expect(m.value.leaseId).toBe(awaiting!);
      expect(m.value.ok).toBe(true);
      awaiting = undefined;
      finished++;
      continue;
    }
    expect(m.case).toBe("offer");
    if (m.case !== "offer") continue;
    expect(awaiting).toBeUndefined();
    awaiting = m.value.leaseId;
    if (finished % 2 === 0) {
      w.upload(m.value, 0, new Uint8Array([finished]));
      w.send({ case: "complete", value: { jobId: m.value.jobId, leaseId: m.value.leaseId, outputCount: 1 } });
    } else {
      w.send({ case: "fail", value: { jobId: m.value.jobId, leaseId: m.value.leaseId, error: "odd one out", retryable: false } });
    }
  }
  expect(awaiting).toBeUndefined();
});
