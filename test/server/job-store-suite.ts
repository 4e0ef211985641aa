import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { TaskSchema } from "../../gen/studio/v1/job_pb.js";
import type { JobChange, JobEvents } from "../../server/events/job-events.js";
import { JobError } from "../../server/jobs/job-errors.js";
import type { JobStore } from "../../server/jobs/job-store.js";
import type { JobRow } from "../../server/jobs/job-row.js";

/** What the shared suite needs from one storage implementation. */
export interface JobStoreHarness {
  store: JobStore;
  events: JobEvents;
  /** Moves a job the way dispatch would (the suite does not depend on dispatch's SQL). */
  setState(id: string, state: { status: string; leaseId?: string | null; leaseWorker?: string | null; error?: string }): void;
  /** Sets whether a registry model may be resolved. */
  setModelEnabled(name: string, enabled: boolean): void;
  count(): number;
  close(): Promise<void> | void;
}

const task = (prompt = "p") => create(TaskSchema, { kind: { case: "text", value: { prompt } } });
const newJob = (over: Partial<Parameters<JobStore["create"]>[0]> = {}) => ({
  model: "synthetic",
  task: task(),
  priority: 0,
  maxAttempts: 3,
  ...over,
});

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof JobError) return err.code;
    throw err;
  }
  throw new Error("expected a JobError");
}

/**
 * The JobStore contract, written once so that every implementation (SQLite now,
 * PostgreSQL later) runs the same tests. `open` gives a fresh, seeded store whose
 * clock moves forward on every reading.
 */
export function exerciseJobStore(name: string, open: () => Promise<JobStoreHarness>) {
  describe(`JobStore contract: ${name}`, () => {
    const withStore = (fn: (h: JobStoreHarness) => Promise<void> | void) => async () => {
      const h = await open();
      try {
        await fn(h);
      } finally {
        await h.close();
      }
    };

    test(
      "create stores the resolved source and publishes after commit",
      withStore((h) => {
        const seen: (JobChange & { visible: boolean })[] = [];
        const off = h.events.subscribe((c) => seen.push({ ...c, visible: h.store.get(c.jobId) !== undefined }));
        const { row, created } = h.store.create(newJob());
        off();
        expect(created).toBe(true);
        expect(row.status).toBe("QUEUED");
        expect(row.engine).toBe("synthetic");
        expect(JSON.parse(row.modelSource!).engine).toBe("synthetic");
        expect(seen).toEqual([{ jobId: row.id, status: "QUEUED", model: "synthetic", job: row, visible: true }]);
      }),
    );

    test(
      "createBatch writes several creates together, refuses each bad one alone, and publishes once all are written",
      withStore((h) => {
        const seen: { jobId: string; rows: number }[] = [];
        const off = h.events.subscribe((c) => seen.push({ jobId: c.jobId, rows: h.count() }));
        const outcomes = h.store.createBatch([
          newJob({ task: task("a"), idempotencyKey: "k1" }),
          newJob({ model: "ghost" }),
          newJob({ task: task("b") }),
          newJob({ task: task("a"), idempotencyKey: "k1" }),
          newJob({ task: task("other"), idempotencyKey: "k1" }),
        ]);
        off();
        type Made = { row: JobRow; created: boolean };
        const [a, b, again] = [outcomes[0], outcomes[2], outcomes[3]] as [Made, Made, Made];
        const refusal = (i: number) => ((outcomes[i] as { error: unknown }).error as JobError).code;
        expect(a.created).toBe(true);
        expect(b.created).toBe(true);
        expect(refusal(1)).toBe("model_unavailable");
        expect(again).toEqual({ row: a.row, created: false });
        expect(refusal(4)).toBe("idempotency_conflict");
        // Both changes come after both rows were written (one commit), in input order.
        expect(seen).toEqual([
          { jobId: a.row.id, rows: 2 },
          { jobId: b.row.id, rows: 2 },
        ]);
        expect(h.count()).toBe(2);
        expect(h.store.createBatch([])).toEqual([]);
      }),
    );

    test(
      "idempotency keys return the first job for the same request, idempotency_conflict for another; missing or disabled models write nothing",
      withStore((h) => {
        const a = h.store.create(newJob({ idempotencyKey: "k" }));
        const b = h.store.create(newJob({ idempotencyKey: "k" }));
        expect(b).toEqual({ row: a.row, created: false });
        expect(codeOf(() => h.store.create(newJob({ idempotencyKey: "k", task: task("other") })))).toBe("idempotency_conflict");
        expect(codeOf(() => h.store.create(newJob({ idempotencyKey: "k", priority: 9 })))).toBe("idempotency_conflict");
        expect(codeOf(() => h.store.create(newJob({ model: "ghost" })))).toBe("model_unavailable");
        h.setModelEnabled("synthetic", false);
        expect(codeOf(() => h.store.create(newJob()))).toBe("model_unavailable");
        expect(h.count()).toBe(1);
      }),
    );

    test(
      "list pages newest first on (createdAt, id) with filters",
      withStore((h) => {
        const ids = Array.from({ length: 5 }, (_, i) => h.store.create(newJob({ task: task(`p${i}`) })).row.id);
        h.setState(ids[1]!, { status: "FAILED" });
        const first = h.store.list({}, { pageSize: 2 });
        expect(first.rows.map((r) => r.id)).toEqual([ids[4]!, ids[3]!]);
        const second = h.store.list({}, { pageSize: 2, after: first.next });
        expect(second.rows.map((r) => r.id)).toEqual([ids[2]!, ids[1]!]);
        const last = h.store.list({}, { pageSize: 2, after: second.next });
        expect(last.rows.map((r) => r.id)).toEqual([ids[0]!]);
        expect(last.next).toBeUndefined();
        expect(h.store.list({ statuses: ["FAILED"] }, { pageSize: 10 }).rows.map((r) => r.id)).toEqual([ids[1]!]);
        expect(h.store.list({ model: "other" }, { pageSize: 10 }).rows).toEqual([]);
      }),
    );

    test(
      "promote copies the task under a freshly resolved model and leaves the original alone",
      withStore((h) => {
        const { row: original } = h.store.create(newJob({ priority: 2 }));
        const promoted = h.store.promote(original.id, "qwen3-0.6b", 100);
        expect(promoted).toMatchObject({ model: "qwen3-0.6b", engine: "llama-cpp", priority: 100, promotedFrom: original.id });
        expect(promoted.task).toBe(original.task);
        expect(h.store.get(original.id)).toEqual(original);
        expect(codeOf(() => h.store.promote("nope", "synthetic", 100))).toBe("job_not_found");
      }),
    );

    test(
      "retry and cancel are conditional on the state they expect",
      withStore((h) => {
        const { row } = h.store.create(newJob());
        expect(codeOf(() => h.store.retry(row.id))).toBe("wrong_state");
        h.setState(row.id, { status: "RUNNING", leaseId: "L", leaseWorker: "w" });
        const cancelled = h.store.cancel(row.id);
        expect(cancelled.row).toMatchObject({ status: "CANCELLED", leaseId: null, leaseWorker: null });
        expect([cancelled.previousLeaseWorker, cancelled.previousLeaseId]).toEqual(["w", "L"]);
        expect(codeOf(() => h.store.cancel(row.id))).toBe("wrong_state");
        h.setModelEnabled("synthetic", false);
        expect(codeOf(() => h.store.retry(row.id))).toBe("model_unavailable");
        expect(h.store.get(row.id)!.status).toBe("CANCELLED");
        h.setModelEnabled("synthetic", true);
        h.setState(row.id, { status: "FAILED", error: "boom" });
        expect(h.store.retry(row.id)).toMatchObject({ status: "QUEUED", attempts: 0, error: "", outputs: "[]", finishedAt: null });
        expect(codeOf(() => h.store.cancel("nope"))).toBe("job_not_found");
      }),
    );
  });
}
