import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toJson } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { JobOutputSchema, JobStatus, type Task } from "../../gen/studio/v1/job_pb.js";
import { BROKEN_MODEL, ChaosCluster, FAIL_MARKER, SD_MODEL, SYNTH_MODEL } from "./chaos-cluster.js";
import { checkInvariants, filesUnder, type InvariantReport, type StoredOutput } from "./invariants.js";
import { MetricsTally } from "./metrics-tally.js";
import { survivorsOf } from "./processes.js";

export interface ChaosOptions {
  /** How long jobs are created and things are killed; the settle phase comes after. */
  durationMs: number;
  syntheticWorkers?: number;
  sdWorkers?: number;
  /** A random worker is killed every killMinMs..killMaxMs. */
  killMinMs?: number;
  killMaxMs?: number;
  studioKills?: number;
  leaseTtlMs?: number;
  heartbeatIntervalMs?: number;
  jobIntervalMs?: number;
  /** How long after the chaos every job may take to reach a terminal state. */
  settleDeadlineMs?: number;
  sdStepMs?: number;
  log?: (line: string) => void;
  /** Keep the temp dir (logs, data dir) for a look afterwards. */
  keepDir?: boolean;
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
  settleMs: number;
  elapsedMs: number;
  workDirsLeftByKilledWorkers: number;
  sdFileGets: number;
}

export interface ChaosResult {
  figures: ChaosFigures;
  report: InvariantReport;
  /** Every broken invariant (from the database, the store, the caches and /proc). */
  violations: string[];
  dir: string;
}

const rand = (min: number, max: number) => min + Math.random() * (max - min);
const pick = <T>(xs: T[]): T | undefined => xs[Math.floor(Math.random() * xs.length)];

function randomJob(n: number): { model: string; task: Task; maxAttempts?: number } {
  const seed = BigInt(Math.floor(Math.random() * 2 ** 31));
  const image = (prompt: string, batchCount: number, overrides?: { width: number; height: number }) =>
    ({ kind: { case: "image", value: { prompt, seed, batchCount, negativePrompt: "", overrides } } }) as unknown as Task;
  const r = Math.random();
  if (r < 0.5) return { model: SYNTH_MODEL, task: image(`synthetic ${n}`, 1 + (n % 3)) };
  if (r < 0.6) return { model: SYNTH_MODEL, task: image(`small ${n}`, 1, { width: 24, height: 16 }) };
  if (r < 0.7) return { model: SYNTH_MODEL, task: { kind: { case: "text", value: { prompt: `say ${n}`, seed, messages: [], stop: [] } } } as unknown as Task };
  if (r < 0.95) return { model: SD_MODEL, task: image(`sd ${n}`, 1 + (n % 2)) };
  if (r < 0.975) return { model: SD_MODEL, task: image(`${FAIL_MARKER} ${n}`, 1), maxAttempts: 2 };
  return { model: BROKEN_MODEL, task: image(`broken ${n}`, 1), maxAttempts: 2 };
}

const TERMINAL = new Set([JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]);

/**
 * The chaos run: a studio child process, compiled workers and a client creating jobs, while workers
 * are killed with SIGKILL and replaced, the studio is killed and restarted on the same data dir, and
 * one worker is stopped (SIGSTOP) past its lease TTL and continued. Then every job must settle and
 * the invariants are checked from the database, the output store, the model cache and /proc.
 */
export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const {
    durationMs, syntheticWorkers = 3, sdWorkers = 2, killMinMs = 1500, killMaxMs = 3500, studioKills = 2,
    leaseTtlMs = 2000, heartbeatIntervalMs = 300, jobIntervalMs = 150, settleDeadlineMs = 60_000, sdStepMs = 60,
    log = () => {}, keepDir = false,
  } = o;
  const dir = mkdtempSync(join(tmpdir(), "chaos-"));
  const start = Date.now();
  const c = await ChaosCluster.start({ dir, leaseTtlMs, heartbeatIntervalMs, maxAttempts: 25, sdStepMs });
  const figures: ChaosFigures = {
    jobsCreated: 0, createRetries: 0, workerKills: 0, orphanedEngines: 0, studioKills: 0, stops: 0, leaseExpiries: 0,
    jobRetries: 0, offers: 0, restarts: [], settleMs: 0, elapsedMs: 0, workDirsLeftByKilledWorkers: 0, sdFileGets: 0,
  };
  const violations: string[] = [];
  const seenAtSuccess = new Map<string, StoredOutput[]>();
  const successTimes: number[] = [];
  const metrics = new MetricsTally(c.studio.url);
  const killed = new Set<string>();
  let chaos = true;
  let watching = true;

  for (let i = 0; i < syntheticWorkers; i++) c.startWorker("synthetic");
  for (let i = 0; i < sdWorkers; i++) c.startWorker("sd");

  const watcher = (async () => {
    while (watching) {
      const abort = new AbortController();
      const stopper = setInterval(() => !watching && abort.abort(), 200);
      try {
        for await (const res of c.jobs.watchJobs({ statuses: [JobStatus.SUCCEEDED] }, { signal: abort.signal })) {
          const job = res.job;
          if (!job || job.status !== JobStatus.SUCCEEDED) continue;
          successTimes.push(Date.now());
          if (!seenAtSuccess.has(job.id)) seenAtSuccess.set(job.id, job.outputs.map((x) => toJson(JobOutputSchema, x) as StoredOutput));
        }
      } catch {
        // The studio went away; reconnect below.
      } finally {
        clearInterval(stopper);
      }
      if (watching) await Bun.sleep(100);
    }
  })();

  const creator = (async () => {
    let n = 0;
    while (chaos) {
      n += 1;
      const job = randomJob(n);
      const key = `chaos-${start}-${n}`;
      for (;;) {
        try {
          const res = await c.jobs.createJob({ ...job, idempotencyKey: key }, { timeoutMs: 5000 });
          figures.jobsCreated += 1;
          if (n % 23 === 0) setTimeout(() => void c.jobs.cancelJob({ jobId: res.job!.id }).catch(() => {}), rand(0, 800));
          break;
        } catch (err) {
          if (!(err instanceof ConnectError)) throw err;
          figures.createRetries += 1;
          await Bun.sleep(100);
        }
      }
      await Bun.sleep(jobIntervalMs);
    }
  })();

  const scraper = setInterval(() => void metrics.scrape(), 1000);
  const studioKillAt = Array.from({ length: studioKills }, (_, i) => start + ((i + 1) * durationMs) / (studioKills + 1.5));
  const stopAt = start + durationMs * 0.45;
  let stopped = false;
  let nextKill = Date.now() + rand(killMinMs, killMaxMs);
  try {
    while (Date.now() - start < durationMs) {
      await Bun.sleep(100);
      if (studioKillAt.length > 0 && Date.now() >= studioKillAt[0]!) {
        studioKillAt.shift();
        await metrics.scrape();
        metrics.newIncarnation();
        const t0 = Date.now();
        await c.studio.kill9();
        figures.studioKills += 1;
        await Bun.sleep(300);
        await c.studio.start();
        const ready = Date.now();
        figures.restarts.push({ downMs: ready - t0, firstCompletionMs: undefined });
        const entry = figures.restarts.at(-1)!;
        void (async () => {
          while (entry.firstCompletionMs === undefined && Date.now() - ready < 60_000) {
            const first = successTimes.find((t) => t >= ready);
            if (first !== undefined) entry.firstCompletionMs = first - ready;
            else await Bun.sleep(20);
          }
        })();
        log(`studio killed and restarted (down ${ready - t0} ms)`);
      }
      if (!stopped && Date.now() >= stopAt) {
        stopped = true;
        const victim = pick(c.alive("sd")) ?? pick(c.alive());
        if (victim) {
          victim.signal("SIGSTOP");
          figures.stops += 1;
          log(`SIGSTOP ${victim.name} for ${2 * leaseTtlMs + 500} ms`);
          victim.stopped = true;
          setTimeout(() => {
            victim.signal("SIGCONT");
            victim.stopped = false;
          }, 2 * leaseTtlMs + 500);
        }
      }
      if (Date.now() >= nextKill) {
        nextKill = Date.now() + rand(killMinMs, killMaxMs);
        const victim = pick(c.alive());
        if (!victim) continue;
        await victim.kill9();
        killed.add(victim.name);
        figures.workerKills += 1;
        const orphans = survivorsOf(new Set(), new Set(readPids(c.pidFile(victim.name))));
        if (orphans.length > 0) figures.orphanedEngines += 1;
        c.startWorker(victim.kind);
        log(`killed ${victim.name}${orphans.length ? ` (its sd-cli ${orphans.map((p) => p.pid).join(",")} outlives it)` : ""}`);
      }
    }
  } finally {
    chaos = false;
    await creator;
    for (const w of c.workers) if (w.stopped) {
      w.signal("SIGCONT");
      w.stopped = false;
    }
  }

  const settleStart = Date.now();
  let open = -1;
  while (Date.now() - settleStart < settleDeadlineMs) {
    try {
      const { jobs } = await c.jobs.listJobs({ statuses: [JobStatus.QUEUED, JobStatus.OFFERED, JobStatus.RUNNING], pageSize: 500 });
      open = jobs.filter((j) => !TERMINAL.has(j.status)).length;
      if (open === 0) break;
    } catch {
      // Retry until the deadline.
    }
    await Bun.sleep(250);
  }
  figures.settleMs = Date.now() - settleStart;
  if (open !== 0) violations.push(`${open} jobs were not terminal ${settleDeadlineMs} ms after the chaos stopped`);
  await metrics.scrape();
  clearInterval(scraper);
  watching = false;
  await watcher;
  Object.assign(figures, metrics.totals());
  await c.stopAll();
  figures.sdFileGets = c.fileGets.count;

  const roots = new Set(c.workers.map((w) => w.pid));
  const groups = c.engineGroups();
  const deadline = Date.now() + 15_000;
  let survivors = survivorsOf(roots, groups);
  while (survivors.length > 0 && Date.now() < deadline) {
    await Bun.sleep(100);
    survivors = survivorsOf(roots, groups);
  }
  for (const s of survivors) violations.push(`process ${s.pid} (${s.comm}) of a worker survived`);

  // Jobs made to fail (two attempts) say why: their own fault, or a worker lost twice under the chaos.
  const lost = String.raw`worker "[^"]+" was lost: its lease expired without a heartbeat, and the job has used all 2 attempts`;
  const report = checkInvariants(c.dataDir, seenAtSuccess, (model, task) => {
    if (model === BROKEN_MODEL) return new RegExp(`HTTP 404 .*gone\\.gguf|${lost}`);
    if (task.kind.case === "image" && task.kind.value.prompt.startsWith(FAIL_MARKER)) return new RegExp(`sd-cli exited with status 1.*out of memory|${lost}`, "s");
    return undefined;
  });
  violations.push(...report.violations);
  violations.push(...checkWorkerDirs(dir, c.workers.filter((w) => !killed.has(w.name)).map((w) => w.name)));
  figures.workDirsLeftByKilledWorkers = [...killed].reduce((n, name) => n + countEntries(join(dir, "work", name)), 0);
  figures.elapsedMs = Date.now() - start;
  if (!keepDir && violations.length === 0) rmSync(dir, { recursive: true, force: true });
  return { figures, report, violations, dir };
}

function readPids(file: string): number[] {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).map(Number) : [];
}

function countEntries(path: string): number {
  return existsSync(path) ? readdirSync(path).length : 0;
}

/**
 * Workers that were stopped gracefully leave no job dirs behind, and every complete file in any
 * model cache hashes to its name (a corrupt blob would poison later jobs).
 */
function checkWorkerDirs(dir: string, graceful: string[]): string[] {
  const out: string[] = [];
  for (const name of graceful) {
    const left = countEntries(join(dir, "work", name));
    if (left > 0) out.push(`worker ${name} stopped gracefully but left ${left} entries in its work dir`);
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
