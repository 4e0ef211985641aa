import { immediate, type StudioDb } from "../../db/open.js";
import type { QueueStore } from "../queue-store.js";
import { accept } from "./accept.js";
import { claim, peekQueued } from "./claim.js";
import { complete } from "./complete.js";
import { decline } from "./decline.js";
import { expire } from "./expire.js";
import { fail } from "./fail.js";
import { requireCurrentLease, selectJob } from "./lease-sql.js";
import { saveProgress } from "./progress.js";
import { keep, renew } from "./renew.js";

/**
 * The QueueStore on the studio's SQLite file; each operation lives in its own file beside this one.
 * Writes go through the file's group commit: those of one turn share a transaction (db.group).
 * A claim commits as soon as the code that asked for it is done (GroupCommit's `soon`): it is what
 * a waiting job's offer waits for, and placement asks for a round's claims together.
 */
export function createSqliteQueueStore(db: StudioDb): QueueStore {
  const write = <T>(op: () => T): Promise<T> => db.group.run(op);
  return {
    peekQueued: async (limit) => peekQueued(db, limit),
    claim: (filter, now, ttlMs) => db.group.run(() => claim(db, filter, now, ttlMs), { soon: true }),
    accept: (lease, now, ttlMs) => write(() => accept(db, lease, now, ttlMs)),
    decline: (lease, now) => write(() => decline(db, lease, now)),
    saveProgress: (lease, json, now) => write(() => saveProgress(db, lease, json, now)),
    renew: (ids, now, ttlMs, holder) => write(() => renew(db, ids, now, ttlMs, holder)),
    keep: (ids, holder, now, ttlMs) => write(() => keep(db, ids, holder, now, ttlMs)),
    current: async (lease, now) => requireCurrentLease(db, lease, now),
    complete: (lease, json, now) => write(() => complete(db, lease, json, now)),
    // A savepoint inside the group: a claim that fails takes its complete back with it.
    completeAndClaim: (lease, json, now, next) =>
      write(() =>
        immediate(db, () => {
          const row = complete(db, lease, json, now);
          return { row, next: claim(db, next.filter, now, next.ttlMs) };
        }),
      ),
    fail: (lease, error, retryable, now) => write(() => fail(db, lease, error, retryable, now)),
    expire: (now) => write(() => expire(db, now)),
    get: async (jobId) => selectJob(db, jobId),
  };
}
