import type { PgDriver } from "../../server/db/pg/pg-db.js";
import { startTestPg, type TestPg } from "../../test/helpers/test-pg.js";
import type { QueueUnderTest } from "./queue-phases.js";
import { startStudioProcess, type StudioProcess } from "./studio-process.js";
import { jobCreator, startSessionWorkers } from "./studio-side.js";

/**
 * A private PostgreSQL 15 for the benchmark. Durability as the studio's SQLite has it (WAL with
 * synchronous=NORMAL: no flush per commit): fsync on, synchronous_commit off, so that a crash may
 * lose the last moments of commits but never corrupts; both queues then pay the same for a commit.
 */
export function startBenchPostgres(): Promise<TestPg> {
  return startTestPg({ durable: true, settings: ["synchronous_commit=off", "shared_buffers=256MB", "max_connections=200"] });
}

/** Studio replicas on one PostgreSQL database, the bench's workers split across them, creates sent to each in turn. */
export interface PgStudioSide extends QueueUnderTest {
  replicas: StudioProcess[];
  /**
   * Stops the first replica's workers and returns the same studios with creates on the first
   * replica only: every job must cross to a worker on another replica (after the other phases).
   */
  crossReplica(): Promise<QueueUnderTest>;
  stop(): Promise<void>;
}

export async function startPgStudioSide(
  pg: TestPg,
  { replicas, workers, driver, logLevel = "warn", name }: { replicas: number; workers: number; driver: PgDriver; logLevel?: string; name: string },
): Promise<PgStudioSide> {
  const url = await pg.createDatabase("bench");
  const env = { STUDIO_DATABASE_URL: url, STUDIO_PG_DRIVER: driver };
  // Started one after the other: the first migrates (the others would wait on its advisory lock anyway).
  const studios: StudioProcess[] = [];
  for (let i = 0; i < replicas; i++) studios.push(await startStudioProcess({ logLevel, env }));
  const children = await Promise.all(
    studios.map((s, i) => startSessionWorkers(s.url, { count: Math.floor(workers / replicas) + (i < workers % replicas ? 1 : 0) })),
  );
  const creators = studios.map((s) => jobCreator(s.url));
  const processes = () => ({
    ...Object.fromEntries(studios.map((s, i) => [`studio ${String.fromCharCode(65 + i)}`, [s.pid]])),
    postgres: pg.pids(),
  });
  return {
    name,
    replicas: studios,
    workers: children.flat(),
    serverPid: studios[0]!.pid,
    processes,
    create: (i) => creators[i % creators.length]!(i),
    async crossReplica() {
      await Promise.all(children[0]!.splice(0).map((c) => c.stop()));
      return { name: `${name}, created on A, workers on B`, workers: children.slice(1).flat(), serverPid: studios[0]!.pid, processes, create: creators[0]! };
    },
    async stop() {
      await Promise.all(children.flat().map((c) => c.stop()));
      for (const s of studios) await s.stop();
    },
  };
}
