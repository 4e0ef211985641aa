import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { JobStatus, TaskSchema } from "../../gen/studio/v1/job_pb.js";
import { JobService, WatchJobsRequestSchema, type WatchJobsResponse } from "../../gen/studio/v1/job_service_pb.js";
import { JobError } from "../../server/jobs/job-errors.js";
import { watchJobs } from "../../server/jobs/watch-jobs.js";
import { sqliteOf, startTestStudio, type TestStudio } from "../helpers/test-studio.js";

const task = create(TaskSchema, { kind: { case: "image", value: { prompt: "owl", seed: 1n } } });

let t: TestStudio;
let jobs: Client<typeof JobService>;
beforeEach(async () => {
  let tick = 0;
  t = await startTestStudio({}, { now: () => 1_800_000_000_000 + ++tick });
  jobs = t.client(JobService, t.grpcTransport());
});
afterEach(() => t.stop());

/** Waits until cond holds, polling; for server-side effects that no event announces. */
async function until(cond: () => boolean, what: string, deadlineMs = 3000) {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

describe("WatchJobs", () => {
  test("sends the snapshot, then each matching change, and unsubscribes when the client goes away", async () => {
    const a = (await jobs.createJob({ model: "synthetic", task })).job!;
    const b = (await jobs.createJob({ model: "synthetic", task })).job!;
    sqliteOf(t.studio).run(
      "INSERT INTO graphicsJobs (id, model, status, priority, task, modelSource, createdAt, updatedAt) VALUES ('legacy', 'synthetic', 'QUEUED', 0, '{}', '{broken', 0, 0)",
    );
    const baseline = t.studio.ctx.events.listenerCount;
    const abort = new AbortController();
    const stream = jobs.watchJobs({ includeSnapshot: true, model: "synthetic" }, { signal: abort.signal });
    const it = stream[Symbol.asyncIterator]();
    const next = async (): Promise<WatchJobsResponse> => (await it.next()).value as WatchJobsResponse;

    const snapshot = [await next(), await next(), await next()];
    expect(snapshot.every((m) => m.snapshot)).toBe(true);
    expect(snapshot.map((m) => m.job!.id)).toEqual([b.id, a.id, "legacy"]);
    expect(snapshot[2]!.job!.modelSource).toBeUndefined();
    expect(t.studio.ctx.events.listenerCount).toBe(baseline + 1);

    const c = (await jobs.createJob({ model: "synthetic", task })).job!;
    const created = await next();
    expect(created.snapshot).toBe(false);
    expect(created.job!.id).toBe(c.id);
    expect(created.job!.status).toBe(JobStatus.QUEUED);

    await jobs.cancelJob({ jobId: a.id });
    const cancelled = await next();
    expect(cancelled.job!.id).toBe(a.id);
    expect(cancelled.job!.status).toBe(JobStatus.CANCELLED);

    t.studio.ctx.events.publish({ jobId: "legacy", status: "QUEUED", model: "synthetic" });
    const legacy = await next();
    expect(legacy.job!.id).toBe("legacy");
    expect(legacy.job!.modelSource).toBeUndefined();

    abort.abort();
    await it.next().catch(() => undefined);
    await until(() => t.studio.ctx.events.listenerCount === baseline, "the watch to unsubscribe");
  });

  test("filters by status, model and job ids", async () => {
    const watched = (await jobs.createJob({ model: "synthetic", task })).job!;
    const baseline = t.studio.ctx.events.listenerCount;
    const abort = new AbortController();
    const it = jobs
      .watchJobs({ includeSnapshot: true, jobIds: [watched.id], statuses: [JobStatus.CANCELLED] }, { signal: abort.signal })
      [Symbol.asyncIterator]();
    const first = it.next();
    await until(() => t.studio.ctx.events.listenerCount === baseline + 1, "the watch to subscribe");
    // Nothing in the snapshot matches (the job is QUEUED); an unrelated job's change is not sent either.
    const other = (await jobs.createJob({ model: "synthetic", task })).job!;
    await jobs.cancelJob({ jobId: other.id });
    await jobs.cancelJob({ jobId: watched.id });
    const msg = (await first).value as WatchJobsResponse;
    expect(msg.snapshot).toBe(false);
    expect(msg.job!.id).toBe(watched.id);
    expect(msg.job!.status).toBe(JobStatus.CANCELLED);
    abort.abort();
    await it.next().catch(() => undefined);
  });

  test("a reader that falls too far behind is ended with watch_overflow", async () => {
    const { storage, events } = t.studio.ctx;
    const store = storage.jobs;
    const abort = new AbortController();
    const gen = watchJobs(create(WatchJobsRequestSchema, {}), abort.signal, { store, events, maxPending: 2 });
    const first = gen.next();
    // Three distinct jobs change before the reader takes anything: more than the two it may hold.
    // Started together: each create publishes before the reader's turn comes.
    await Promise.all([0, 1, 2].map(() => store.create({ model: "synthetic", task, priority: 0, maxAttempts: 1 })));
    const err = await first.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobError);
    expect((err as JobError).code).toBe("watch_overflow");

    // At the limit nothing is lost: two changed jobs, both delivered.
    const gen2 = watchJobs(create(WatchJobsRequestSchema, {}), abort.signal, { store, events, maxPending: 2 });
    const firstOf2 = gen2.next();
    const made = (await Promise.all([0, 1].map(() => store.create({ model: "synthetic", task, priority: 0, maxAttempts: 1 })))).map((r) => r.row.id);
    const got = [((await firstOf2).value as WatchJobsResponse).job!.id, ((await gen2.next()).value as WatchJobsResponse).job!.id];
    expect(got).toEqual(made);
    await gen2.return(undefined);
    abort.abort();
  });

  test("stopping the studio ends open watches cleanly instead of waiting out the grace period", async () => {
    await jobs.createJob({ model: "synthetic", task });
    const it = jobs.watchJobs({ includeSnapshot: true })[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    const rest = it.next();
    // A grace period far beyond the test's timeout: only a watch that ends on its own lets this resolve in time.
    await t.studio.stop(60_000);
    expect((await rest).done).toBe(true);
  });

  test("bad filters are refused before anything is sent", async () => {
    const it = jobs.watchJobs({ statuses: [JobStatus.UNSPECIFIED] })[Symbol.asyncIterator]();
    expect(it.next()).rejects.toThrow("statuses[0]");
  });
});
