import { expect, test } from "bun:test";
import { CreateBatcher } from "../../server/jobs/create-batcher.js";
import type { CreateOutcome, JobStore, NewJob } from "../../server/jobs/job-store.js";
import type { JobRow } from "../../server/jobs/job-row.js";

const input = (n: number) => ({ model: `m${n}` }) as unknown as NewJob;

/** A store that commits at once and, like the real ones, publishes each job after its commit. */
function committingStore(onCommitted: (models: string[]) => void): JobStore {
  return {
    async createBatch(inputs: readonly NewJob[]): Promise<CreateOutcome[]> {
      onCommitted(inputs.map((i) => i.model));
      return inputs.map((i) => ({ row: { id: i.model } as JobRow, created: true }));
    },
  } as unknown as JobStore;
}

test("the creates of one turn share a commit, and their callers are answered after what the commit's events started", async () => {
  const order: string[] = [];
  const batcher = new CreateBatcher(
    committingStore((models) => {
      order.push(`commit ${models.join(",")}`);
      // Placement's work after a commit is a chain of microtasks (claims, the offer through the RPC stack).
      void (async () => {
        for (let i = 0; i < 50; i++) await Promise.resolve();
        order.push("offers sent");
      })();
    }),
  );
  const answered = Promise.all([1, 2].map((n) => batcher.create(input(n)).then((r) => order.push(`answer ${r.row.id}`))));
  expect(order).toEqual([]);
  await answered;
  expect(order).toEqual(["commit m1,m2", "offers sent", "answer m1", "answer m2"]);
});

test("a create refused by the store fails alone, after the commit, and the next batch goes on", async () => {
  const store = {
    async createBatch(inputs: readonly NewJob[]): Promise<CreateOutcome[]> {
      return inputs.map((i) => (i.model === "m2" ? { error: new Error("refused") } : { row: { id: i.model } as JobRow, created: true }));
    },
  } as unknown as JobStore;
  const batcher = new CreateBatcher(store);
  const results = await Promise.allSettled([1, 2, 3].map((n) => batcher.create(input(n))));
  expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
  expect((await batcher.create(input(4))).row.id).toBe("m4");
});
