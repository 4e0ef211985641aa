import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { LeaseLostError } from "../../server/dispatch/dispatch-error.js";
import type { QueueStore } from "../../server/dispatch/queue-store.js";

/** A job to put in the queue, as a store's test harness inserts it. */
export interface SeedJob {
  id: string;
  engine: string | null;
  priority?: number;
  createdAt: number;
  maxAttempts?: number;
  /** The GPU memory the job needs (unset: none counted). */
  vramBytes?: number;
}

/** What each storage implementation gives the shared suite. */
export interface StoreHarness {
  store: QueueStore;
  insert(job: SeedJob): Promise<void>;
  status(id: string): Promise<string>;
  close(): Promise<void>;
}

const TTL = 1000;
const T0 = 1_800_000_000_000;

/**
 * The queue rules every QueueStore must keep (River's driver test idea): run it
 * against each implementation. SQLite runs it in queue-store.test.ts; a
 * PostgreSQL store adds one line there.
 */
export function exerciseQueueStore(name: string, open: () => Promise<StoreHarness>): void {
  describe(`QueueStore (${name})`, () => {
    let h: StoreHarness;
    beforeEach(async () => {
      h = await open();
    });
    afterEach(() => h.close());

    test("claim takes priority then age, filters engines, hands legacy rows to anyone, skips excluded", async () => {
      await h.insert({ id: "old", engine: "synthetic", createdAt: T0 });
      await h.insert({ id: "new", engine: "synthetic", createdAt: T0 + 5 });
      await h.insert({ id: "urgent", engine: "synthetic", priority: 9, createdAt: T0 + 9 });
      await h.insert({ id: "sd", engine: "sd-cpp", createdAt: T0 - 10 });
      await h.insert({ id: "legacy", engine: null, createdAt: T0 + 20 });
      const take = async (engines: string[], exclude: string[] = []) =>
        (await h.store.claim({ workerName: "w", engines, excludeJobIds: exclude }, T0 + 100, TTL))?.id;
      expect(await take(["synthetic"])).toBe("urgent");
      expect(await take(["synthetic"], ["old"])).toBe("new");
      expect(await take(["synthetic"])).toBe("old");
      expect(await take(["llama-cpp"])).toBe("legacy");
      expect(await take(["llama-cpp"])).toBeUndefined();
      const sd = await h.store.claim({ workerName: "w", engines: ["sd-cpp"] }, T0 + 100, TTL);
      expect(sd).toMatchObject({ id: "sd", status: "OFFERED", attempts: 1, leaseWorker: "w", leaseExpiresAt: T0 + 100 + TTL });
      expect(sd!.leaseId).toMatch(/^[0-9a-f]{32}$/);
    });

    test("a claim bounded by GPU memory takes only jobs that fit (or count none); peekQueued shows each job's need", async () => {
      const GiB = 1024 ** 3;
      await h.insert({ id: "huge", engine: "llama-cpp", createdAt: T0, vramBytes: 80 * GiB });
      await h.insert({ id: "fits", engine: "llama-cpp", createdAt: T0 + 1, vramBytes: 12 * GiB });
      await h.insert({ id: "unknown", engine: "llama-cpp", createdAt: T0 + 2 });
      expect((await h.store.peekQueued(10)).map((q) => [q.id, q.vramBytes])).toEqual([
        ["huge", 80 * GiB],
        ["fits", 12 * GiB],
        ["unknown", null],
      ]);
      const take = async (maxVramBytes: number | undefined, jobId?: string) =>
        (await h.store.claim({ workerName: "w", engines: ["llama-cpp"], maxVramBytes, jobId }, T0 + 100, TTL))?.id;
      expect(await take(24 * GiB, "huge")).toBeUndefined();
      expect(await take(24 * GiB)).toBe("fits");
      expect(await take(-1)).toBe("unknown");
      expect(await take(24 * GiB)).toBeUndefined();
      // Without a bound (a CPU-only worker) nothing is checked.
      expect(await take(undefined)).toBe("huge");
    });

    test("a job is claimed once however many claims race for it", async () => {
      await h.insert({ id: "only", engine: "synthetic", createdAt: T0 });
      const results = await Promise.all(
        Array.from({ length: 16 }, (_, i) => h.store.claim({ workerName: `w${i}`, engines: ["synthetic"], jobId: "only" }, T0, TTL)),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    test("complete commits once under the current lease; stale and foreign leases change nothing", async () => {
      await h.insert({ id: "j", engine: "synthetic", createdAt: T0 });
      const row = (await h.store.claim({ workerName: "w", engines: ["synthetic"] }, T0, TTL))!;
      const lease = { jobId: "j", leaseId: row.leaseId! };
      await expect(h.store.complete({ jobId: "j", leaseId: "other" }, "[]", T0 + 1)).rejects.toBeInstanceOf(LeaseLostError);
      expect((await h.store.accept(lease, T0 + 1, TTL)).status).toBe("RUNNING");
      const done = await h.store.complete(lease, '[{"index":0}]', T0 + 2);
      expect(done).toMatchObject({ status: "SUCCEEDED", outputs: '[{"index":0}]', leaseId: null, finishedAt: T0 + 2 });
      await expect(h.store.complete(lease, "[]", T0 + 3)).rejects.toBeInstanceOf(LeaseLostError);
      await expect(h.store.fail(lease, "x", true, T0 + 3)).rejects.toBeInstanceOf(LeaseLostError);
      expect(await h.status("j")).toBe("SUCCEEDED");
    });

    test("completeAndClaim leases the next job with the commit of the last, and claims nothing when the complete is refused", async () => {
      await h.insert({ id: "done", engine: "synthetic", createdAt: T0 });
      await h.insert({ id: "next", engine: "synthetic", createdAt: T0 + 1 });
      await h.insert({ id: "declined", engine: "synthetic", createdAt: T0 + 2 });
      await h.insert({ id: "after", engine: "synthetic", createdAt: T0 + 3 });
      const row = (await h.store.claim({ workerName: "w", engines: ["synthetic"], jobId: "done" }, T0, TTL))!;
      const lease = { jobId: "done", leaseId: row.leaseId! };
      const next = { filter: { workerName: "w", engines: ["synthetic"], excludeJobIds: ["declined"] }, ttlMs: TTL };

      // A refused complete (a stale lease) changes nothing and claims nothing.
      await expect(h.store.completeAndClaim({ jobId: "done", leaseId: "stale" }, "[]", T0 + 1, next)).rejects.toBeInstanceOf(LeaseLostError);
      expect(await h.status("done")).toBe("OFFERED");
      expect(await h.status("next")).toBe("QUEUED");

      const both = await h.store.completeAndClaim(lease, '[{"index":0}]', T0 + 2, next);
      expect(both.row).toMatchObject({ id: "done", status: "SUCCEEDED", outputs: '[{"index":0}]', leaseId: null });
      expect(both.next).toMatchObject({ id: "next", status: "OFFERED", attempts: 1, leaseWorker: "w", leaseExpiresAt: T0 + 2 + TTL });
      expect(both.next!.leaseId).toMatch(/^[0-9a-f]{32}$/);

      // Exactly once: the same complete again is refused, and the queue is untouched by it.
      await expect(h.store.completeAndClaim(lease, "[]", T0 + 3, next)).rejects.toBeInstanceOf(LeaseLostError);
      expect(await h.status("after")).toBe("QUEUED");
      // The next claim skips the excluded job; with nothing left to claim, the complete still commits.
      const third = await h.store.completeAndClaim({ jobId: "next", leaseId: both.next!.leaseId! }, "[]", T0 + 4, next);
      expect(third.next?.id).toBe("after");
      const last = await h.store.completeAndClaim({ jobId: "after", leaseId: third.next!.leaseId! }, "[]", T0 + 5, next);
      expect(last).toMatchObject({ row: { id: "after", status: "SUCCEEDED" }, next: undefined });
      expect(await h.status("declined")).toBe("QUEUED");
    });

    test("decline gives the attempt back; retryable fail requeues until max attempts", async () => {
      await h.insert({ id: "j", engine: "synthetic", createdAt: T0, maxAttempts: 2 });
      const claim = async () => (await h.store.claim({ workerName: "w", engines: ["synthetic"] }, T0, TTL))!;
      let row = await claim();
      row = await h.store.decline({ jobId: "j", leaseId: row.leaseId! }, T0);
      expect(row).toMatchObject({ status: "QUEUED", attempts: 0, leaseId: null });
      row = await claim();
      row = await h.store.fail({ jobId: "j", leaseId: row.leaseId! }, "oom", true, T0);
      expect(row).toMatchObject({ status: "QUEUED", attempts: 1, error: "oom" });
      row = await claim();
      row = await h.store.fail({ jobId: "j", leaseId: row.leaseId! }, "oom", true, T0);
      expect(row).toMatchObject({ status: "FAILED", attempts: 2 });
    });

    test("renew extends current leases only; expire requeues, then fails after max attempts", async () => {
      await h.insert({ id: "j", engine: "synthetic", createdAt: T0, maxAttempts: 2 });
      const first = (await h.store.claim({ workerName: "gpu-7", engines: ["synthetic"] }, T0, TTL))!;
      const r = await h.store.renew([first.leaseId!, "gone"], T0 + 900, TTL);
      expect(r).toEqual({ renewed: [first.leaseId!], lost: ["gone"], expiresAt: T0 + 900 + TTL });
      expect(await h.store.expire(T0 + 1500)).toEqual([]);
      const expired = await h.store.expire(T0 + 900 + TTL);
      expect(expired.map((e) => [e.row.status, e.leaseId, e.leaseWorker])).toEqual([["QUEUED", first.leaseId, "gpu-7"]]);
      const second = (await h.store.claim({ workerName: "gpu-8", engines: ["synthetic"] }, T0 + 3000, TTL))!;
      const kept = await h.store.keep([second.leaseId!, first.leaseId!], "gpu-8b", T0 + 3500, TTL);
      expect(kept.kept.map((k) => k.leaseWorker)).toEqual(["gpu-8b"]);
      expect(kept.lost).toEqual([first.leaseId!]);
      const last = await h.store.expire(T0 + 3500 + TTL);
      expect(last[0]!.row.status).toBe("FAILED");
      expect(last[0]!.row.error).toContain('worker "gpu-8b" was lost');
    });
  });
}
