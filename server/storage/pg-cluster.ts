import { sql } from "drizzle-orm";
import type { PgDb } from "../db/pg/pg-db.js";
import type { JobChange } from "../events/job-events.js";

/** The one channel the triggers and the replicas' pings use. */
export const STUDIO_CHANNEL = "studio";

/** The most JSON one broadcast may carry: PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more, and the envelope takes some. */
export const MAX_BROADCAST_BYTES = 7_600;

/** A token created or revoked on some replica. */
export interface TokenChange {
  kind: "created" | "revoked";
  tokenId: string;
}

/** Another replica's connected workers (WorkerInfo protobuf JSON), as it last published them. */
export interface ReplicaWorkers {
  replicaId: string;
  workers: unknown[];
}

/**
 * What one studio replica knows of the others through the shared database: their job and
 * token changes (LISTEN/NOTIFY: small payloads sent by the tables' triggers, the facts
 * re-read from the rows), whether its own notification connection works (each replica
 * sends itself a ping every second and is healthy while they arrive), and the workers
 * connected to each replica (a row per replica, rewritten every few seconds).
 */
export interface Cluster {
  readonly replicaId: string;
  /** Job changes another replica committed, in commit order. */
  onJobChange(listener: (change: JobChange) => void): () => void;
  onTokenChange(listener: (change: TokenChange) => void): () => void;
  /** After notifications may have been lost (the connection was down): re-read what matters. */
  onResync(listener: () => void): () => void;
  /** Why this replica cannot hear the others now, or undefined. */
  problem(): string | undefined;
  /**
   * Sends a message on a topic to the other replicas (a NOTIFY: delivered in order, at most once,
   * and lost while a replica's connection is down; its JSON must stay under MAX_BROADCAST_BYTES).
   */
  broadcast(topic: string, body: unknown): Promise<void>;
  /** Messages the other replicas broadcast on a topic. */
  onBroadcast(topic: string, listener: (body: unknown) => void): () => void;
  /** Records this replica's workers for the others' ListWorkers. */
  publishWorkers(workers: unknown[]): Promise<void>;
  /** The workers of the other live replicas. */
  otherWorkers(): Promise<ReplicaWorkers[]>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface PgClusterOptions {
  now?: () => number;
  pingIntervalMs?: number;
  /** A replica whose row is older than this is dead: its workers are not listed (its row is deleted later). */
  replicaTimeoutMs?: number;
  onError?: (err: unknown, what: string) => void;
}

type Payload =
  | { t: "job"; r: string; id: string; s: string; m: string; l: string | null; w: string | null }
  | { t: "token"; r: string; k: "created" | "revoked"; id: string }
  | { t: "ping"; r: string; n: number }
  | { t: "msg"; r: string; k: string; b: unknown };

/** The Cluster of a replica on PostgreSQL. */
export function createPgCluster(db: PgDb, { now = Date.now, pingIntervalMs = 1000, replicaTimeoutMs = 5000, onError = () => {} }: PgClusterOptions = {}): Cluster {
  const me = db.applicationName;
  const jobListeners = new Set<(c: JobChange) => void>();
  const tokenListeners = new Set<(c: TokenChange) => void>();
  const resyncListeners = new Set<() => void>();
  const topicListeners = new Map<string, Set<(body: unknown) => void>>();
  let unlisten: (() => Promise<void>) | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;
  let sent = 0;
  let lastHeard = 0;
  let lastHeardAt = 0;
  let deaf = true;
  const startedAt = now();

  const emit = <T>(set: Set<(x: T) => void>, x: T) => {
    for (const l of set)
      try {
        l(x);
      } catch (err) {
        onError(err, "a cluster listener failed");
      }
  };

  const onPayload = (text: string) => {
    let p: Payload;
    try {
      p = JSON.parse(text) as Payload;
    } catch {
      return;
    }
    if (p.t === "ping") {
      if (p.r !== me) return;
      lastHeard = Math.max(lastHeard, p.n);
      lastHeardAt = now();
      if (deaf) {
        // Heard again after a gap (or for the first time): whatever was said meanwhile is lost.
        deaf = false;
        emit(resyncListeners, undefined);
      }
      return;
    }
    if (p.r === me) return;
    if (p.t === "job") emit(jobListeners, { jobId: p.id, status: p.s, model: p.m, leaseId: p.l, leaseWorker: p.w, remote: true });
    else if (p.t === "token") emit(tokenListeners, { kind: p.k, tokenId: p.id });
    else if (p.t === "msg") {
      const set = topicListeners.get(p.k);
      if (set) emit(set, p.b);
    }
  };

  const tick = async () => {
    if (lastHeardAt > 0 && now() - lastHeardAt > 3 * pingIntervalMs) deaf = true;
    try {
      await db.rows(sql`SELECT pg_notify(${STUDIO_CHANNEL}, ${JSON.stringify({ t: "ping", r: me, n: ++sent })})`);
    } catch (err) {
      deaf = true;
      onError(err, "cluster ping failed");
    }
  };

  const listeners = <T>(set: Set<T>) => (l: T) => {
    set.add(l);
    return () => void set.delete(l);
  };

  return {
    replicaId: me,
    onJobChange: listeners(jobListeners),
    onTokenChange: listeners(tokenListeners),
    onResync: listeners(resyncListeners),
    problem() {
      if (lastHeardAt === 0) return "notifications: not listening yet";
      if (deaf || now() - lastHeardAt > 3 * pingIntervalMs)
        return `notifications: none heard for ${Math.round((now() - lastHeardAt) / 1000)} s (the connection to the database is down)`;
      return undefined;
    },
    async broadcast(topic, body) {
      const payload = JSON.stringify({ t: "msg", r: me, k: topic, b: body });
      if (Buffer.byteLength(payload) >= 8000) throw new RangeError(`a broadcast on ${topic} is ${Buffer.byteLength(payload)} bytes; NOTIFY takes under 8,000`);
      await db.rows(sql`SELECT pg_notify(${STUDIO_CHANNEL}, ${payload})`);
    },
    onBroadcast(topic, listener) {
      let set = topicListeners.get(topic);
      if (!set) topicListeners.set(topic, (set = new Set()));
      set.add(listener);
      return () => void set.delete(listener);
    },
    async publishWorkers(workers) {
      const at = now();
      await db.rows(
        sql`INSERT INTO "studioReplicas" ("id", "startedAt", "seenAt", "workers") VALUES (${me}, ${startedAt}, ${at}, ${JSON.stringify(workers)})
            ON CONFLICT ("id") DO UPDATE SET "seenAt" = EXCLUDED."seenAt", "workers" = EXCLUDED."workers"`,
      );
    },
    async otherWorkers() {
      const rows = await db.rows<{ id: string; workers: string }>(
        sql`SELECT "id", "workers" FROM "studioReplicas" WHERE "id" <> ${me} AND "seenAt" > ${now() - replicaTimeoutMs} ORDER BY "id"`,
      );
      return rows.map((r) => ({ replicaId: r.id, workers: JSON.parse(r.workers) as unknown[] }));
    },
    async start() {
      unlisten = await db.listen(STUDIO_CHANNEL, onPayload);
      await tick();
      timer = setInterval(() => void tick(), pingIntervalMs);
      // Rows of replicas dead for an hour are garbage; any replica may clear them.
      await db.rows(sql`DELETE FROM "studioReplicas" WHERE "seenAt" < ${now() - 3_600_000}`).catch((err) => onError(err, "replica cleanup"));
    },
    async stop() {
      clearInterval(timer);
      timer = undefined;
      await unlisten?.().catch(() => {});
      await db.rows(sql`DELETE FROM "studioReplicas" WHERE "id" = ${me}`).catch(() => {});
    },
  };
}
