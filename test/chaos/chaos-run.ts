import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JobStatus } from "../../gen/studio/v1/job_pb.js";
import { BROKEN_MODEL, ChaosCluster, FAIL_MARKER } from "./chaos-cluster.js";
import { JobCreator, SuccessWatcher } from "./chaos-client.js";
import { checkInvariants, filesUnder, type InvariantReport } from "./invariants.js";
import { MetricsTally } from "./metrics-tally.js";
import { SeededRandom, chaosSeed } from "./random.js";
import { recordedPids, survivorsOf } from "./processes.js";
import { startTestPg, type TestPg } from "../helpers/test-pg.js";

export interface ChaosOptions {
  /** How long jobs are created and things are killed; the settle phase comes after. */
  durationMs: number;
  syntheticWorkers?: number;
  sdWorkers?: number;
  /** A random worker is killed every killMinMs..killMaxMs. */
  killMinMs?: number;
  killMaxMs?: number;
  /**
   * The chaos phase lasts until at least this many workers were killed, even past durationMs: on a
   * loaded machine a database restart or a slow replica start can take much of the window, and a run
   * that killed fewer workers than planned has tested less than it says.
   */
  minWorkerKills?: number;
  studioKills?: number;
  leaseTtlMs?: number;
  heartbeatIntervalMs?: number;
  jobIntervalMs?: number;
  /** How long after the chaos every job may take to reach a terminal state. */
  settleDeadlineMs?: number;
  sdStepMs?: number;
  log?: (line: string) => void;
  /** Keep the temp dir (logs, data dir) for a look afterwards (it is always kept when an invariant broke). */
  keepDir?: boolean;
  /** Seeds every random choice (kill schedule and victims, job mix, cancels); random when absent. */
  seed?: number;
  /**
   * PostgreSQL mode: this many studio replicas on a private PostgreSQL 15 cluster (workers rotate
   * through them); each studio kill takes one replica, and PostgreSQL itself is restarted pgRestarts times.
   */
  replicas?: number;
  pgRestarts?: number;
}

/** What happened during a run, for the printed figures. */
export interface ChaosFigures {
  jobsCreated: number;
  createRetries: number;
  workerKills: number;
  /** Kills of an sd worker whose sd-cli was still running just after (it outlives the kill -9 for a while). */
  orphanedEngines: number;
  studioKills: number;
  stops: number;
  leaseExpiries: number;
  jobRetries: number;
  offers: number;
  /** Per studio restart: kill -9 to ready again, and ready to the first job completed. */
  restarts: Array<{ downMs: number; firstCompletionMs: number | undefined }>;
  /** PostgreSQL mode: per restart of the database, stop to every replica ready again, and ready to the first job completed. */
  pgRestarts: Array<{ downMs: number; firstCompletionMs: number | undefined }>;
  settleMs: number;
  elapsedMs: number;
  workDirsLeftByKilledWorkers: number;
  /** Replacements started on the --work-dir of the worker killed just before. */
  workDirsReused: number;
  /** Job dirs and warm-server records of killed workers that a replacement's start-up crash recovery removed. */
  recoveredEntries: number;
  /** Engine process groups of killed workers that a replacement's crash recovery killed. */
  recoveredGroups: number;
  sdFileGets: number;
}

export interface ChaosResult {
  /** The seed of this run's random choices: the same seed replays them (timings still vary). */
  seed: number;
  figures: ChaosFigures;
  report: InvariantReport;
  /** Every broken invariant (from the database, the store, the caches and /proc). */
  violations: string[];
  dir: string;
}

const TERMINAL = new Set([JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]);

type Settings = Required<Omit<ChaosOptions, "log" | "seed" | "replicas" | "pgRestarts">> & {
  log: (line: string) => void;
  seed: number;
  random: SeededRandom;
  replicas: number;
  pgRestarts: number;
  pg?: TestPg;
};

/**
 * The chaos run: a studio child process, compiled workers and a client creating jobs, while workers
 * are killed with SIGKILL and replaced, the studio is killed and restarted on the same data dir, and
 * one worker is stopped (SIGSTOP) past its lease TTL and continued. Then every job must settle and
 * the invariants are checked from the database, the output store, the model caches and /proc.
 * If the run itself breaks, every process it started is killed before the error propagates.
 */
export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const seed = o.seed ?? chaosSeed(undefined, "seed");
  const s: Settings = {
    syntheticWorkers: 3, sdWorkers: 2, killMinMs: 1500, killMaxMs: 3500, studioKills: 2, leaseTtlMs: 2000,
    heartbeatIntervalMs: 300, jobIntervalMs: 150, settleDeadlineMs: 60_000, sdStepMs: 60, keepDir: false, minWorkerKills: 0,
    ...o,
    log: o.log ?? (() => {}),
    seed,
    random: new SeededRandom(seed),
    replicas: o.replicas ?? 0,
    pgRestarts: o.pgRestarts ?? 0,
  };
  s.log(`seed ${seed}`);
  const dir = mkdtempSync(join(tmpdir(), "chaos-"));
  const start = Date.now();
  // PostgreSQL mode: a private cluster (durable: it is restarted under load) and an empty database the replicas migrate together.
  s.pg = s.replicas > 0 ? await startTestPg({ durable: true }) : undefined;
  try {
    const postgres = s.pg ? { databaseUrl: await s.pg.createDatabase("chaos"), replicas: s.replicas } : undefined;
    const c = await ChaosCluster.start({ dir, leaseTtlMs: s.leaseTtlMs, heartbeatIntervalMs: s.heartbeatIntervalMs, maxAttempts: 25, sdStepMs: s.sdStepMs, postgres });
    try {
      return await drive(c, s, dir, start);
    } catch (err) {
      await c.killAll();
      throw err;
    }
  } finally {
    s.pg?.destroy();
  }
}

async function drive(c: ChaosCluster, s: Settings, dir: string, start: number): Promise<ChaosResult> {
  const figures: ChaosFigures = {
    jobsCreated: 0, createRetries: 0, workerKills: 0, orphanedEngines: 0, studioKills: 0, stops: 0, leaseExpiries: 0,
    jobRetries: 0, offers: 0, restarts: [], pgRestarts: [], settleMs: 0, elapsedMs: 0, workDirsLeftByKilledWorkers: 0, workDirsReused: 0,
    recoveredEntries: 0, recoveredGroups: 0, sdFileGets: 0,
  };
  const violations: string[] = [];
  const metrics = c.studios.map((studio) => new MetricsTally(studio.url));
  const killed = new Set<string>();
  for (let i = 0; i < s.syntheticWorkers; i++) c.startWorker("synthetic");
  for (let i = 0; i < s.sdWorkers; i++) c.startWorker("sd");
  const watcher = new SuccessWatcher(c.jobs);
  const creator = new JobCreator(c.jobs, s.jobIntervalMs, `chaos-${start}`, s.random.fork(1));
  const scraper = setInterval(() => void Promise.all(metrics.map((m) => m.scrape())), 1000);
  try {
    await chaosPhase(c, s, start, figures, metrics, watcher, killed);
  } finally {
    await creator.stop();
    for (const w of c.workers)
      if (w.stopped) {
        w.signal("SIGCONT");
        w.stopped = false;
      }
  }
  figures.jobsCreated = creator.created;
  figures.createRetries = creator.retries;

  const settleStart = Date.now();
  const open = await settle(c, s.settleDeadlineMs);
  figures.settleMs = Date.now() - settleStart;
  if (open !== 0) violations.push(`${open} jobs were not terminal ${s.settleDeadlineMs} ms after the chaos stopped`);
  await Promise.all(metrics.map((m) => m.scrape()));
  clearInterval(scraper);
  await watcher.stop();
  for (const m of metrics) for (const [key, n] of Object.entries(m.totals())) figures[key as "offers"] += n;
  // A worker the run did not kill must still be running: one that exited by itself crashed.
  for (const w of c.workers)
    if (!w.alive && !killed.has(w.name))
      violations.push(`worker ${w.name} exited by itself (${w.child.proc.signalCode ?? `status ${w.child.proc.exitCode}`}); see ${w.child.logFile}`);
  violations.push(...(await c.stopAll()));
  figures.sdFileGets = c.fileGets.count;

  violations.push(...(await survivingProcesses(c)));
  // Jobs made to fail (two attempts) say why: their own fault, or a worker lost twice under the chaos.
  const lost = String.raw`worker "[^"]+" was lost: its lease expired without a heartbeat, and the job has used all 2 attempts`;
  const report = checkInvariants(await c.snapshot(), watcher.seenAtSuccess, (model, task) => {
    if (model === BROKEN_MODEL) return new RegExp(`HTTP 404 .*gone\\.gguf|${lost}`);
    if (task.kind.case === "image" && task.kind.value.prompt.startsWith(FAIL_MARKER)) return new RegExp(`sd-cli exited with status 1.*out of memory|${lost}`, "s");
    return undefined;
  });
  violations.push(...report.violations);
  // Each --work-dir's last holder decides what may be left in it: nothing after a graceful stop (its own
  // jobs and, through crash recovery, those of the killed workers it replaced), anything after a kill.
  const lastHolder = new Map(c.workers.map((w) => [w.home, w] as const));
  const graceful = [...lastHolder.values()].filter((w) => !killed.has(w.name));
  violations.push(...checkWorkerDirs(dir, graceful.map((w) => w.home)));
  figures.workDirsLeftByKilledWorkers = [...lastHolder.values()]
    .filter((w) => killed.has(w.name))
    .reduce((n, w) => n + countEntries(c.workDirOf(w.home)), 0);
  const recovery = recoveryOf(c.workers.map((w) => w.child.logFile));
  figures.recoveredEntries = recovery.removed;
  figures.recoveredGroups = recovery.killedGroups;
  violations.push(...recovery.problems);
  figures.elapsedMs = Date.now() - start;
  if (!s.keepDir && violations.length === 0) rmSync(dir, { recursive: true, force: true });
  return { seed: s.seed, figures, report, violations, dir };
}

/** The schedule: worker kills every killMin..killMax ms, studio kills spread over the run, one SIGSTOP near the middle. */
async function chaosPhase(
  c: ChaosCluster,
  s: Settings,
  start: number,
  figures: ChaosFigures,
  metrics: MetricsTally[],
  watcher: SuccessWatcher,
  killed: Set<string>,
): Promise<void> {
  const studioKillAt = Array.from({ length: s.studioKills }, (_, i) => start + ((i + 1) * s.durationMs) / (s.studioKills + 1.5));
  // Database restarts fall between the replica kills.
  const pgRestartAt = Array.from({ length: s.pgRestarts }, (_, i) => start + ((i + 1.5) * s.durationMs) / (s.pgRestarts + 2));
  const stopAt = start + s.durationMs * 0.45;
  const stopForMs = 2 * s.leaseTtlMs + 500;
  let stopped = false;
  const schedule = s.random.fork(2);
  let nextKill = Date.now() + schedule.between(s.killMinMs, s.killMaxMs);
  // Every scheduled event happens, however long the machine makes each one take: the phase ends once
  // its time is up and the studio kills, database restarts and minimum worker kills are all done.
  const eventsLeft = () => studioKillAt.length + pgRestartAt.length + Math.max(0, s.minWorkerKills - figures.workerKills);
  while (Date.now() - start < s.durationMs || eventsLeft() > 0) {
    await Bun.sleep(100);
    if (studioKillAt.length > 0 && Date.now() >= studioKillAt[0]!) {
      studioKillAt.shift();
      // One replica at a time (the only studio on SQLite): the others keep serving its workers.
      const which = figures.studioKills % c.studios.length;
      const studio = c.studios[which]!;
      await metrics[which]!.scrape();
      metrics[which]!.newIncarnation();
      const t0 = Date.now();
      await studio.kill9();
      figures.studioKills += 1;
      await Bun.sleep(300);
      await studio.start();
      const ready = Date.now();
      const entry: ChaosFigures["restarts"][number] = { downMs: ready - t0, firstCompletionMs: undefined };
      figures.restarts.push(entry);
      void watcher.firstSuccessAfter(ready).then((ms) => (entry.firstCompletionMs = ms));
      s.log(`studio${c.studios.length > 1 ? ` replica ${which}` : ""} killed and restarted (down ${ready - t0} ms)`);
    }
    if (s.pg && pgRestartAt.length > 0 && Date.now() >= pgRestartAt[0]!) {
      pgRestartAt.shift();
      const t0 = Date.now();
      s.pg.stop("fast");
      await Bun.sleep(500);
      s.pg.start();
      // Ready again: every replica reconnected and hears the others (its /readyz says so).
      await Promise.all(c.studios.map((studio) => studio.waitReady(30_000)));
      const ready = Date.now();
      const entry: ChaosFigures["pgRestarts"][number] = { downMs: ready - t0, firstCompletionMs: undefined };
      figures.pgRestarts.push(entry);
      void watcher.firstSuccessAfter(ready).then((ms) => (entry.firstCompletionMs = ms));
      s.log(`PostgreSQL restarted (replicas ready again after ${ready - t0} ms)`);
    }
    if (!stopped && Date.now() >= stopAt) {
      stopped = true;
      const victim = schedule.pick(c.alive("sd")) ?? schedule.pick(c.alive());
      if (victim) {
        victim.signal("SIGSTOP");
        victim.stopped = true;
        figures.stops += 1;
        s.log(`SIGSTOP ${victim.name} for ${stopForMs} ms`);
        setTimeout(() => {
          victim.signal("SIGCONT");
          victim.stopped = false;
        }, stopForMs);
      }
    }
    if (Date.now() >= nextKill) {
      nextKill = Date.now() + schedule.between(s.killMinMs, s.killMaxMs);
      const victim = schedule.pick(c.alive());
      if (!victim) continue;
      await victim.kill9();
      killed.add(victim.name);
      figures.workerKills += 1;
      const orphans = survivorsOf(new Set(), new Set(recordedPids(c.pidFile(victim.name))));
      if (orphans.length > 0) figures.orphanedEngines += 1;
      // The replacement starts on the victim's --work-dir, so its crash recovery meets what the kill left.
      const next = c.startWorker(victim.kind, victim.home);
      figures.workDirsReused += 1;
      s.log(`killed ${victim.name}${orphans.length ? ` (its sd-cli ${orphans.map((p) => p.pid).join(",")} outlives it)` : ""}; ${next.name} takes over its work dir`);
    }
  }
}

/** Waits until no job is QUEUED, OFFERED or RUNNING; returns how many still were at the deadline. */
async function settle(c: ChaosCluster, deadlineMs: number): Promise<number> {
  const start = Date.now();
  let open = -1;
  while (Date.now() - start < deadlineMs) {
    try {
      const { jobs } = await c.jobs.listJobs({ statuses: [JobStatus.QUEUED, JobStatus.OFFERED, JobStatus.RUNNING], pageSize: 500 });
      open = jobs.filter((j) => !TERMINAL.has(j.status)).length;
      if (open === 0) return 0;
    } catch {
      // Retry until the deadline.
    }
    await Bun.sleep(250);
  }
  return open;
}

/**
 * After every worker stopped: no process of theirs may be left (an engine leads its own process
 * group; an sd-cli orphaned by a kill -9 finishes its run, so this waits up to 15 s for the groups to empty).
 */
async function survivingProcesses(c: ChaosCluster): Promise<string[]> {
  const roots = new Set(c.workers.map((w) => w.pid));
  const groups = c.engineGroups();
  const deadline = Date.now() + 15_000;
  let survivors = survivorsOf(roots, groups);
  while (survivors.length > 0 && Date.now() < deadline) {
    await Bun.sleep(100);
    survivors = survivorsOf(roots, groups);
  }
  return survivors.map((p) => `process ${p.pid} (${p.comm}) of a worker survived`);
}

/** What the workers' start-up crash recovery logged: entries removed, groups killed, and what it could not do. */
function recoveryOf(logFiles: string[]): { removed: number; killedGroups: number; problems: string[] } {
  const out = { removed: 0, killedGroups: 0, problems: [] as string[] };
  for (const file of logFiles) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, "utf8").split("\n")) {
      if (!line.includes("crash recovery")) continue;
      let entry: { msg?: string; killedGroups?: unknown; path?: string };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        continue;
      }
      const msg = entry.msg ?? "";
      if (msg.startsWith("crash recovery: removed")) {
        out.removed += 1;
        if (Array.isArray(entry.killedGroups)) out.killedGroups += entry.killedGroups.length;
      } else if (msg.startsWith("crash recovery: a dead worker's engine processes could not be killed") || msg.startsWith("crash recovery: cannot remove")) {
        out.problems.push(`${file}: ${msg} (${entry.path ?? "?"})`);
      }
    }
  }
  return out;
}

function countEntries(path: string): number {
  return existsSync(path) ? readdirSync(path).length : 0;
}

/**
 * Workers that were stopped gracefully leave no job dirs behind, and every complete file in any
 * model cache hashes to its name (a corrupt blob would poison later jobs).
 */
function checkWorkerDirs(dir: string, gracefulHomes: string[]): string[] {
  const out: string[] = [];
  for (const home of gracefulHomes) {
    const left = countEntries(join(dir, "work", home));
    if (left > 0) out.push(`work dir ${home}: its last worker stopped gracefully but ${left} entries are left in it`);
  }
  for (const entry of readdirSync(dir).filter((e) => e.startsWith("cache-"))) {
    const blobs = join(dir, entry, "blobs", "sha256");
    for (const f of filesUnder(blobs)) {
      const sha = createHash("sha256").update(readFileSync(join(blobs, f))).digest("hex");
      if (sha !== f) out.push(`${entry}: cached blob ${f} hashes to ${sha}`);
    }
  }
  return out;
}
