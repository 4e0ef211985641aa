import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { sql } from "drizzle-orm";
import { TaskSchema } from "../../gen/studio/v1/job_pb.js";
import type { Storage } from "../../server/storage/storage.js";
import { freshPgDatabase, openTestPgStorage } from "../helpers/pg-storage.js";

/** Three replicas' storages on one database: what one queue shared by many processes must never do. */
let replicas: Storage[] = [];
const T0 = 1_800_000_000_000;
const TTL = 1000;
const task = create(TaskSchema, { kind: { case: "image", value: { prompt: "p" } } });

beforeAll(async () => {
  const url = await freshPgDatabase();
  replicas = await Promise.all([0, 1, 2].map(async () => (await openTestPgStorage({}, url)).storage));
});
afterAll(async () => {
  for (const r of replicas) await r.close();
});

describe("one queue, many replicas", () => {
  test("racing claims from every replica hand each job to exactly one worker", async () => {
    const made = await replicas[0]!.jobs.createBatch(Array.from({ length: 30 }, () => ({ model: "synthetic", task, priority: 0, maxAttempts: 3 })));
    const ids = new Set(made.map((o) => ("row" in o ? o.row.id : "")));
    const claims = await Promise.all(
      Array.from({ length: 60 }, (_, i) => replicas[i % 3]!.queue.claim({ workerName: `w${i}`, engines: ["synthetic"] }, T0, TTL)),
    );
    const got = claims.flatMap((r) => (r ? [r.id] : []));
    expect(got.length).toBe(30);
    expect(new Set(got)).toEqual(ids);
  });

  test("reapers on every replica take back each expired lease exactly once", async () => {
    const [q0, q1, q2] = replicas.map((r) => r.queue) as [Storage["queue"], Storage["queue"], Storage["queue"]];
    const later = T0 + 10 * TTL;
    const results = await Promise.all([q0.expire(later), q1.expire(later), q2.expire(later), q0.expire(later)]);
    const taken = results.flat().map((e) => e.row.id);
    expect(taken.length).toBe(30);
    expect(new Set(taken).size).toBe(30);
    for (const e of results.flat()) expect(e.row.status).toBe("QUEUED");
  });

  test("the same idempotency key on three replicas at once makes one job", async () => {
    const outcomes = await Promise.all(replicas.map((r) => r.jobs.create({ model: "synthetic", task, priority: 0, maxAttempts: 3, idempotencyKey: "once" })));
    expect(new Set(outcomes.map((o) => o.row.id)).size).toBe(1);
    expect(outcomes.filter((o) => o.created)).toHaveLength(1);
    const [row] = await replicas[0]!.pg!.rows<{ n: string }>(sql`SELECT count(*) AS n FROM "graphicsJobs" WHERE "idempotencyKey" = 'once'`);
    expect(Number(row!.n)).toBe(1);
  });
});
