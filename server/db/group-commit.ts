import type { Database } from "bun:sqlite";

/** Most operations one group transaction runs; the rest wait for the next. */
export const MAX_GROUP_OPS = 512;

interface Pending {
  op: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for the SQLite file. A commit costs SQLite a WAL write of every page its
 * transaction dirtied, one write call per frame, plus its locks; the claims, completes, progress
 * and renewals of one turn of the event loop dirty mostly the same pages (the queue and lease index
 * pages, often one table page). So writes queued during a turn run at its end (setImmediate),
 * in the order they came, in one BEGIN IMMEDIATE transaction, and each caller is answered once
 * that transaction has committed: durability is what a commit of its own gave it. Measured on the
 * dispatch path (bench/dispatch.ts): 9 WAL frames per job committed alone, 2 at four jobs a commit.
 *
 * An operation is one statement, or runs its statements through immediate() (a savepoint inside
 * the group): one that throws has changed nothing and fails alone. A failed COMMIT fails all of
 * them. Nothing runs between turns, so other writers (their own transactions) never meet an open
 * group transaction.
 *
 * A write that someone is waiting on now (`soon`: the claim for an idle worker, whose offer is the
 * job's latency) commits once the code running now has finished (a microtask), with whatever
 * else is queued by then, instead of at the end of the turn: from inside a setImmediate callback
 * (a create's commit that woke placement), the end of the turn is the next turn of the event loop,
 * after everything else that turn does (the creator's answer among it).
 */
export class GroupCommit {
  #pending: Pending[] = [];
  #scheduled = false;
  #soon = false;

  constructor(readonly sqlite: Database) {}

  /**
   * Runs op in this turn's group transaction; resolves with its result after the commit. With
   * `soon`, the group commits when the code running now is done rather than at the end of the turn.
   */
  run<T>(op: () => T, { soon = false }: { soon?: boolean } = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ op, resolve: resolve as (v: unknown) => void, reject });
      if (soon && !this.#soon) {
        this.#soon = true;
        queueMicrotask(() => {
          this.#soon = false;
          this.flush();
        });
      }
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.flush();
        });
      }
    });
  }

  /** Runs and commits what is queued now (the end of the turn, or sooner; also before the database closes). */
  flush(): void {
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, MAX_GROUP_OPS);
      const results: { ok: boolean; value: unknown }[] = [];
      try {
        this.sqlite.exec("BEGIN IMMEDIATE");
      } catch (err) {
        for (const p of batch) p.reject(err);
        continue;
      }
      for (const p of batch) {
        try {
          results.push({ ok: true, value: p.op() });
        } catch (err) {
          results.push({ ok: false, value: err });
        }
      }
      try {
        this.sqlite.exec("COMMIT");
      } catch (err) {
        try {
          this.sqlite.exec("ROLLBACK");
        } catch {
          // Already rolled back by SQLite.
        }
        for (const p of batch) p.reject(err);
        continue;
      }
      batch.forEach((p, i) => (results[i]!.ok ? p.resolve(results[i]!.value) : p.reject(results[i]!.value)));
    }
  }
}
