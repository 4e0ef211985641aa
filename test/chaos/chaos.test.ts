import { expect, test } from "bun:test";
import { formatFigures } from "./figures.js";
import { runChaos } from "./chaos-run.js";
import { chaosSeed } from "./random.js";

/**
 * The bounded chaos run for CI (about a minute): a studio child process, three synthetic and two
 * fake-sd-cli compiled workers and a client creating jobs, while a random worker is killed with
 * SIGKILL every 1.5-3.5 s and replaced by a worker on its --work-dir (whose crash recovery cleans up
 * after it), the studio is killed twice and restarted on the same data
 * dir, and one worker is frozen with SIGSTOP past its lease TTL. `bun bench/chaos.ts --minutes N`
 * is the long soak of the same run.
 */
test(
  "chaos: kill -9 of workers and of the studio, SIGSTOP past the lease TTL; every invariant holds",
  async () => {
    const seed = chaosSeed(process.env.CHAOS_SEED, "CHAOS_SEED");
    console.log(`chaos seed ${seed} (replay: CHAOS_SEED=${seed} bun test test/chaos/chaos.test.ts, or bun bench/chaos.ts --seed ${seed} --minutes 0.67)`);
    const result = await runChaos({ durationMs: 40_000, minWorkerKills: 8, settleDeadlineMs: 60_000, seed });
    console.log(formatFigures(result));
    if (result.violations.length > 0) console.log(`data kept in ${result.dir}; seed ${seed}`);
    expect(result.violations).toEqual([]);
    const f = result.figures;
    // The run did what it says: chaos happened and jobs of every kind went through it.
    expect(f.workerKills).toBeGreaterThanOrEqual(8);
    expect(f.studioKills).toBe(2);
    expect(f.stops).toBe(1);
    // An sd-cli that outlived its worker's kill had a job dir (its owner record lists the group): the
    // replacement's recovery removed it (and the work dir of every gracefully stopped worker is empty).
    if (f.orphanedEngines > 0) expect(f.recoveredEntries).toBeGreaterThan(0);
    expect(f.restarts.every((r) => r.firstCompletionMs !== undefined)).toBe(true);
    expect(result.report.byStatus.SUCCEEDED ?? 0).toBeGreaterThan(50);
    expect(result.report.byStatus.FAILED ?? 0).toBeGreaterThan(0);
    expect(result.report.outputsChecked).toBeGreaterThan(50);
  },
  180_000,
);

/**
 * The same run in PostgreSQL mode: two studio replicas on a private PostgreSQL 15 cluster, workers
 * given both URLs. Each studio kill takes one replica (the other keeps serving; workers rotate to
 * it and keep their leases), and PostgreSQL itself is restarted once mid-run (replicas say not
 * ready, calls fail UNAVAILABLE, everyone reconnects). The same invariants, read from PostgreSQL.
 */
test(
  "chaos, PostgreSQL mode: two replicas, kill -9 of workers and of replicas, a database restart; every invariant holds",
  async () => {
    const seed = chaosSeed(process.env.CHAOS_SEED, "CHAOS_SEED");
    console.log(`chaos (PostgreSQL) seed ${seed}`);
    const result = await runChaos({ durationMs: 30_000, minWorkerKills: 6, settleDeadlineMs: 60_000, seed, replicas: 2, pgRestarts: 1 });
    console.log(formatFigures(result));
    if (result.violations.length > 0) console.log(`data kept in ${result.dir}; seed ${seed}`);
    expect(result.violations).toEqual([]);
    const f = result.figures;
    expect(f.workerKills).toBeGreaterThanOrEqual(6);
    expect(f.studioKills).toBe(2);
    expect(f.pgRestarts).toHaveLength(1);
    expect(f.restarts.every((r) => r.firstCompletionMs !== undefined)).toBe(true);
    expect(f.pgRestarts.every((r) => r.firstCompletionMs !== undefined)).toBe(true);
    expect(result.report.byStatus.SUCCEEDED ?? 0).toBeGreaterThan(40);
    expect(result.report.outputsChecked).toBeGreaterThan(40);
  },
  180_000,
);
