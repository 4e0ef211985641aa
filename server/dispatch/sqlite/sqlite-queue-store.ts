import type { StudioDb } from "../../db/open.js";
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

/** The QueueStore on the studio's SQLite file; each operation lives in its own file beside this one. */
export function createSqliteQueueStore(db: StudioDb): QueueStore {
  return {
    peekQueued: async (limit) => peekQueued(db, limit),
    claim: async (filter, now, ttlMs) => claim(db, filter, now, ttlMs),
    accept: async (lease, now, ttlMs) => accept(db, lease, now, ttlMs),
    decline: async (lease, now) => decline(db, lease, now),
    saveProgress: async (lease, json, now) => saveProgress(db, lease, json, now),
    renew: async (ids, now, ttlMs, holder) => renew(db, ids, now, ttlMs, holder),
    keep: async (ids, holder, now, ttlMs) => keep(db, ids, holder, now, ttlMs),
    current: async (lease, now) => requireCurrentLease(db, lease, now),
    complete: async (lease, json, now) => complete(db, lease, json, now),
    fail: async (lease, error, retryable, now) => fail(db, lease, error, retryable, now),
    expire: async (now) => expire(db, now),
    get: async (jobId) => selectJob(db, jobId),
  };
}
