import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { TaskSchema } from "../../gen/studio/v1/job_pb.js";
import type { JobChange, JobEvents } from "../../server/events/job-events.js";
import { JobError } from "../../server/jobs/job-errors.js";
import type { JobStore } from "../../server/jobs/job-store.js";
import type { JobRow } from "../../server/jobs/job-row.js";
import type { ModelRegistry } from "../../server/registry/model-registry.js";
import { ModelEngine, ModelFileRole, ModelSourceSchema } from "../../gen/studio/v1/model_pb.js";

/** What the shared suite needs from one storage implementation. */
export interface JobStoreHarness {
  store: JobStore;
  events: JobEvents;
  /** Moves a job the way dispatch would (the suite does not depend on dispatch's SQL). */
  setState(id: string, state: { status: string; leaseId?: string | null; leaseWorker?: string | null; error?: string }): Promise<void>;
  /** The registry the store resolves models from. */
  registry: ModelRegistry;
  count(): Promise<number>;
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

async function codeOf(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof JobError) return err.code;
    throw err;
  }
  throw new Error("expected a JobError");
}

/**
 * The JobStore contract, written once so that every implementation (SQLite and
 * PostgreSQL) runs the same tests. `open` gives a fresh, seeded store whose
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
      withStore(async (h) => {
        const seen: JobChange[] = [];
        const visible: Promise<boolean>[] = [];
        // Read when the change is published: the row must already be committed for any reader.
        const off = h.events.subscribe((c) => {
          seen.push(c);
          visible.push(h.store.get(c.jobId).then((r) => r !== undefined));
        });
        const { row, created } = await h.store.create(newJob());
        off();
        expect(created).toBe(true);
        expect(row.status).toBe("QUEUED");
        expect(row.engine).toBe("synthetic");
        expect(JSON.parse(row.modelSource!).engine).toBe("synthetic");
        expect(seen).toEqual([{ jobId: row.id, status: "QUEUED", model: "synthetic", job: row }]);
        expect(await Promise.all(visible)).toEqual([true]);
      }),
    );

    test(
      "createBatch writes several creates together, refuses each bad one alone, and publishes once all are written",
      withStore(async (h) => {
        const seen: { jobId: string; rows: Promise<number> }[] = [];
        const off = h.events.subscribe((c) => seen.push({ jobId: c.jobId, rows: h.count() }));
        const outcomes = await h.store.createBatch([
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
        expect(await Promise.all(seen.map(async (c) => ({ jobId: c.jobId, rows: await c.rows })))).toEqual([
          { jobId: a.row.id, rows: 2 },
          { jobId: b.row.id, rows: 2 },
        ]);
        expect(await h.count()).toBe(2);
        expect(await h.store.createBatch([])).toEqual([]);
      }),
    );

    test(
      "idempotency keys return the first job for the same request, idempotency_conflict for another; missing or disabled models write nothing",
      withStore(async (h) => {
        const a = await h.store.create(newJob({ idempotencyKey: "k" }));
        const b = await h.store.create(newJob({ idempotencyKey: "k" }));
        expect(b).toEqual({ row: a.row, created: false });
        expect(await codeOf(() => h.store.create(newJob({ idempotencyKey: "k", task: task("other") })))).toBe("idempotency_conflict");
        expect(await codeOf(() => h.store.create(newJob({ idempotencyKey: "k", priority: 9 })))).toBe("idempotency_conflict");
        expect(await codeOf(() => h.store.create(newJob({ model: "ghost" })))).toBe("model_unavailable");
        await h.registry.setEnabled("synthetic", false);
        expect(await codeOf(() => h.store.create(newJob()))).toBe("model_unavailable");
        expect(await h.count()).toBe(1);
      }),
    );

    test(
      "list pages newest first on (createdAt, id) with filters",
      withStore(async (h) => {
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) ids.push((await h.store.create(newJob({ task: task(`p${i}`) }))).row.id);
        await h.setState(ids[1]!, { status: "FAILED" });
        const first = await h.store.list({}, { pageSize: 2 });
        expect(first.rows.map((r) => r.id)).toEqual([ids[4]!, ids[3]!]);
        const second = await h.store.list({}, { pageSize: 2, after: first.next });
        expect(second.rows.map((r) => r.id)).toEqual([ids[2]!, ids[1]!]);
        const last = await h.store.list({}, { pageSize: 2, after: second.next });
        expect(last.rows.map((r) => r.id)).toEqual([ids[0]!]);
        expect(last.next).toBeUndefined();
        expect((await h.store.list({ statuses: ["FAILED"] }, { pageSize: 10 })).rows.map((r) => r.id)).toEqual([ids[1]!]);
        expect((await h.store.list({ model: "other" }, { pageSize: 10 })).rows).toEqual([]);
      }),
    );

    test(
      "promote copies the task under a freshly resolved model and leaves the original alone",
      withStore(async (h) => {
        const { row: original } = await h.store.create(newJob({ priority: 2 }));
        const promoted = await h.store.promote(original.id, "qwen3-0.6b", 100);
        expect(promoted).toMatchObject({ model: "qwen3-0.6b", engine: "llama-cpp", priority: 100, promotedFrom: original.id });
        expect(promoted.task).toBe(original.task);
        expect(await h.store.get(original.id)).toEqual(original);
        expect(await codeOf(() => h.store.promote("nope", "synthetic", 100))).toBe("job_not_found");
      }),
    );

    test(
      "retry and cancel are conditional on the state they expect",
      withStore(async (h) => {
        const { row } = await h.store.create(newJob());
        expect(await codeOf(() => h.store.retry(row.id))).toBe("wrong_state");
        await h.setState(row.id, { status: "RUNNING", leaseId: "L", leaseWorker: "w" });
        const cancelled = await h.store.cancel(row.id);
        expect(cancelled.row).toMatchObject({ status: "CANCELLED", leaseId: null, leaseWorker: null });
        expect([cancelled.previousLeaseWorker, cancelled.previousLeaseId]).toEqual(["w", "L"]);
        expect(await codeOf(() => h.store.cancel(row.id))).toBe("wrong_state");
        await h.registry.setEnabled("synthetic", false);
        expect(await codeOf(() => h.store.retry(row.id))).toBe("model_unavailable");
        expect((await h.store.get(row.id))!.status).toBe("CANCELLED");
        await h.registry.setEnabled("synthetic", true);
        await h.setState(row.id, { status: "FAILED", error: "boom" });
        expect(await h.store.retry(row.id)).toMatchObject({ status: "QUEUED", attempts: 0, error: "", outputs: "[]", finishedAt: null });
        expect(await codeOf(() => h.store.cancel("nope"))).toBe("job_not_found");
      }),
    );

    test(
      "retry refuses a task the model's engine no longer takes, and writes nothing",
      withStore(async (h) => {
        const image = create(TaskSchema, { kind: { case: "image", value: { prompt: "fox" } } });
        await h.registry.create({ name: "switching", source: create(ModelSourceSchema, { engine: ModelEngine.SYNTHETIC }) });
        const { row } = await h.store.create(newJob({ model: "switching", task: image }));
        await h.setState(row.id, { status: "FAILED", error: "boom" });
        const failed = await h.store.get(row.id);
        await h.registry.update("switching", {
          source: create(ModelSourceSchema, { engine: ModelEngine.LLAMA_CPP, files: [{ role: ModelFileRole.MODEL, url: "http://127.0.0.1:9/t.gguf", filename: "t.gguf" }] }),
        });
        expect(await codeOf(() => h.store.retry(row.id))).toBe("wrong_state");
        expect(await h.store.get(row.id)).toEqual(failed);
      }),
    );
  });
}
