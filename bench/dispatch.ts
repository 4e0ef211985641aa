#!/usr/bin/env bun
/**
 * Dispatch throughput and offer latency, Studio and BullMQ side by side in one run (issue 9):
 * N jobs with a small task, M worker processes with one slot each, every job returning 1 KiB.
 *
 * Studio: jobs created through JobService (Connect over HTTP/2) on a studio child process with a
 * fresh SQLite file, offered over Session streams to bench/lib/session-worker.ts processes, the
 * 1 KiB PNG committed to the store. BullMQ: queue.add on a private redis-server, one Worker per
 * process, the 1 KiB string as the job's return value. Redis runs durably (`appendonly yes`,
 * `appendfsync everysec`, its documented production setting), as the studio's SQLite commits are
 * durable; the settings Redis reports are printed with the results.
 *
 * "Studio (CreateJobs stream)" is the same SQLite studio with its client creating every job as a
 * request on one JobService.CreateJobs stream (issue 14) instead of a CreateJob call each: a unary
 * call costs the studio an HTTP/2 stream of its own, about 165 us of CPU in Bun's node:http2 and
 * connect-node before any of our code runs.
 *
 * Studio on PostgreSQL (issue 13): the same on a private PostgreSQL 15 (synchronous_commit off,
 * flushed by its WAL writer, as Redis's appendfsync everysec), with one replica ("PG x1") and with
 * two ("PG x2": workers split across the replicas, creates sent to each in turn), and for two
 * replicas the offer latency of a job created on A to an idle worker on B. Every studio process's
 * CPU and the database's are read from /proc over the throughput phase and reported per job.
 * `--pg-drivers bun-sql,postgres-js` runs the PostgreSQL sides on each driver (drizzle over
 * Bun.sql or postgres.js).
 *
 * Phases per side: a warm-up, throughput (N jobs, `--window` creates in flight), then idle offer
 * latency (jobs created one at a time, each after the previous completed, so workers are idle).
 *
 *   bun bench/dispatch.ts [--jobs 10000] [--workers 4] [--window 64] [--latency-jobs 500] [--smoke]
 *                         [--only studio|bullmq] [--stores sqlite,sqlite-stream,pg1,pg2,bullmq] [--pg-drivers bun-sql]
 *                         [--studio-log-level info] [--cpu-prof DIR] [--callgrind FILE] [--syscalls]
 *
 * `--callgrind FILE` runs the studio under valgrind's callgrind, counting the instructions of its
 * throughput phase only (an exact A/B on a shared machine; its times mean nothing then).
 * `--syscalls` counts the studio's system calls over the throughput phase (strace -c; callgrind
 * sees no kernel work, and SQLite commits, socket and log writes are mostly system calls).
 */
import { parseArgs } from "node:util";
import { startBullmqSide } from "./lib/bullmq-side.js";
import { exitOnSignals } from "./lib/child.js";
import { idleLatencyPhase, throughputPhase, type LatencyResult, type QueueUnderTest, type ThroughputResult } from "./lib/queue-phases.js";
import { startRedis } from "./lib/redis-server.js";
import { emitFigures, figureRecorder, fmt, goal, markdownTable, type Figure } from "./lib/report.js";
import { startStudioProcess } from "./lib/studio-process.js";
import { startStudioSide, type CreateMode } from "./lib/studio-side.js";
import { callgrindInstrument, callgrindTotal, callgrindWrapper } from "./lib/callgrind.js";
import { syscallCounter, type SyscallCounts } from "./lib/strace.js";
import { startBenchPostgres, startPgStudioSide } from "./lib/pg-side.js";
import type { PgDriver } from "../server/db/pg/pg-db.js";

exitOnSignals();
const { values: args } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    jobs: { type: "string" },
    workers: { type: "string" },
    window: { type: "string" },
    "latency-jobs": { type: "string" },
    only: { type: "string" },
    "studio-log-level": { type: "string", default: "info" },
    "cpu-prof": { type: "string" },
    callgrind: { type: "string" },
    syscalls: { type: "boolean", default: false },
    stores: { type: "string" },
    "pg-drivers": { type: "string", default: "bun-sql" },
  },
});
const STORES = ["sqlite", "sqlite-stream", "pg1", "pg2", "bullmq"] as const;
const stores = new Set(
  (args.stores ?? (args.only === "studio" ? "sqlite" : args.only === "bullmq" ? "bullmq" : STORES.join(",")))
    .split(",")
    .map((x) => x.trim()),
);
for (const x of stores) if (!(STORES as readonly string[]).includes(x)) throw new Error(`--stores: unknown ${JSON.stringify(x)}; choose from ${STORES.join(", ")}`);
const pgDrivers = args["pg-drivers"]!.split(",").map((x) => x.trim()) as PgDriver[];
for (const d of pgDrivers) if (d !== "bun-sql" && d !== "postgres-js") throw new Error(`--pg-drivers: unknown ${JSON.stringify(d)}; choose bun-sql or postgres-js`);
const smoke = args.smoke!;
const jobs = Number(args.jobs ?? (smoke ? 100 : 10_000));
const workers = Number(args.workers ?? (smoke ? 2 : 4));
const window = Number(args.window ?? 64);
const latencyJobs = Number(args["latency-jobs"] ?? (smoke ? 10 : 500));
const warmupJobs = smoke ? 10 : Math.min(500, jobs);

interface SideResult {
  name: string;
  throughput: ThroughputResult;
  latency: LatencyResult;
  /** Two replicas: a job created on A offered to an idle worker on B. */
  crossLatency?: LatencyResult;
}

async function measure(q: QueueUnderTest, around?: (on: boolean) => Promise<void>): Promise<SideResult> {
  const pid = q.serverPid;
  if (!q.processes && pid !== undefined) q.processes = () => ({ [q.name === "BullMQ" ? "redis-server" : "studio"]: [pid] });
  console.error(`${q.name}: warm-up (${warmupJobs} jobs)`);
  await throughputPhase(q, { jobs: warmupJobs, window });
  console.error(`${q.name}: throughput (${jobs} jobs, ${workers} workers, ${window} creates in flight)`);
  await around?.(true);
  const throughput = await throughputPhase(q, { jobs, window, stallMs: around ? 600_000 : undefined });
  await around?.(false);
  console.error(`${q.name}: ${fmt(throughput.jobsPerSecond)} jobs/s; idle latency (${latencyJobs} jobs one at a time)`);
  const latency = await idleLatencyPhase(q, { jobs: latencyJobs });
  return { name: q.name, throughput, latency };
}

/** The names the two SQLite sides report under. */
const STUDIO_NAMES: Record<CreateMode, string> = { unary: "Studio", stream: "Studio (CreateJobs stream)" };

let studioInstructions: number | undefined;
let studioSyscalls: SyscallCounts | undefined;

/** The SQLite studio, its client creating jobs with CreateJob calls (`unary`) or on one CreateJobs stream (`stream`). */
async function runStudio(createMode: CreateMode = "unary"): Promise<SideResult> {
  const extraArgs: string[] = [];
  const callgrind = args.callgrind;
  const studio = await startStudioProcess({
    logLevel: args["studio-log-level"],
    extraArgs,
    ...(args["cpu-prof"] ? { bunArgs: ["--cpu-prof", `--cpu-prof-dir=${args["cpu-prof"]}`, "--cpu-prof-md"] } : {}),
    ...(callgrind ? { wrapper: callgrindWrapper(callgrind), timeoutMs: 300_000 } : {}),
  });
  try {
    const side = await startStudioSide(studio.url, { workers, studioPid: studio.pid, createMode, name: STUDIO_NAMES[createMode] });
    try {
      const strace = args.syscalls ? syscallCounter(studio.pid) : undefined;
      const around = callgrind
        ? (on: boolean) => callgrindInstrument(studio.pid, on)
        : strace
          ? async (on: boolean) => {
              if (on) await strace.start();
              else studioSyscalls = await strace.stop();
            }
          : undefined;
      return await measure(side, around);
    } finally {
      await side.stop();
    }
  } catch (err) {
    console.error(studio.tail().join("\n"));
    throw err;
  } finally {
    await studio.stop({ graceMs: callgrind ? 120_000 : undefined });
    if (callgrind) studioInstructions = callgrindTotal(callgrind);
  }
}

let redisSettings: Record<string, string> | undefined;

async function runBullmq(): Promise<SideResult> {
  const redis = await startRedis();
  redisSettings = redis.settings;
  console.error(`BullMQ: redis-server ${Object.entries(redis.settings).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")}`);
  try {
    const side = await startBullmqSide(redis, { workers });
    try {
      return await measure(side);
    } finally {
      await side.stop();
    }
  } finally {
    await redis.stop();
  }
}

async function runPostgres(): Promise<SideResult[]> {
  const out: SideResult[] = [];
  const pg = await startBenchPostgres();
  try {
    for (const driver of pgDrivers) {
      const suffix = pgDrivers.length > 1 ? ` (${driver})` : "";
      for (const replicas of [1, 2].filter((n) => stores.has(`pg${n}`))) {
        const side = await startPgStudioSide(pg, { replicas, workers, driver, logLevel: "warn", name: `Studio PG x${replicas}${suffix}` });
        try {
          const result: SideResult = await measure(side);
          if (replicas > 1) {
            console.error(`${side.name}: idle latency across replicas (${latencyJobs} jobs created on A, workers on B)`);
            result.crossLatency = await idleLatencyPhase(await side.crossReplica(), { jobs: latencyJobs });
          }
          out.push(result);
        } catch (err) {
          for (const r of side.replicas) console.error(r.tail().join("\n"));
          throw err;
        } finally {
          await side.stop();
        }
      }
    }
  } finally {
    pg.destroy();
  }
  return out;
}

const results: SideResult[] = [];
if (stores.has("sqlite")) results.push(await runStudio("unary"));
if (stores.has("sqlite-stream")) results.push(await runStudio("stream"));
if (stores.has("pg1") || stores.has("pg2")) results.push(...(await runPostgres()));
if (stores.has("bullmq")) results.push(await runBullmq());

/** CPU milliseconds per job of each labelled server-side process over the throughput phase. */
const cpuPerJob = (r: SideResult) =>
  Object.entries(r.throughput.cpuSecondsBy).map(([label, seconds]) => [label, (seconds * 1000) / r.throughput.jobs] as const);

console.log(
  markdownTable(
    ["queue", "jobs/s end to end", "offer p50 under load (ms)", "offer p99 under load (ms)", "offer p50 idle (ms)", "offer p99 idle (ms)", "server CPU per job (ms)"],
    results.map((r) => [
      r.name,
      fmt(r.throughput.jobsPerSecond),
      fmt(r.throughput.offerLatencyMs.p50),
      fmt(r.throughput.offerLatencyMs.p99),
      fmt(r.latency.offerLatencyMs.p50),
      fmt(r.latency.offerLatencyMs.p99),
      cpuPerJob(r)
        .map(([label, ms]) => `${label} ${fmt(ms)}`)
        .join(", ") || "-",
    ]),
  ),
);

if (redisSettings)
  console.log(`\nBullMQ's Redis: ${Object.entries(redisSettings).map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(", ")} (as CONFIG GET reports them)`);

if (studioInstructions !== undefined)
  console.log(`\nStudio under callgrind: ${fmt(studioInstructions / jobs)} instructions per job over the throughput phase (${fmt(studioInstructions)} for ${jobs} jobs)`);

if (studioSyscalls !== undefined) {
  const top = [...studioSyscalls.byName].sort((a, b) => b[1] - a[1]).slice(0, 8);
  console.log(
    `\nStudio's system calls over the throughput phase (strace): ${fmt(studioSyscalls.total / jobs)} per job (${top.map(([n, c]) => `${n} ${fmt(c / jobs)}`).join(", ")})`,
  );
}

const ours = results.find((r) => r.name === STUDIO_NAMES.unary);
const oursStreamed = results.find((r) => r.name === STUDIO_NAMES.stream);
const theirs = results.find((r) => r.name === "BullMQ");
const figures: Figure[] = [];
const setup = `${jobs} jobs, ${workers} workers`;
for (const r of results) {
  const isOurs = r === ours || r === oursStreamed;
  const add = figureRecorder(figures, `dispatch: ${r.name}`);
  const server = r.name === "BullMQ" ? "redis-server" : "studio";
  add("throughput end to end", r.throughput.jobsPerSecond, "jobs/s", { note: setup, ...(isOurs ? goal(">=", 1000, r.throughput.jobsPerSecond) : {}) });
  add(`${server} CPU during the throughput phase`, r.throughput.serverCpuPercent, "% of a core");
  add(`${server} CPU per job`, r.throughput.serverCpuMsPerJob, "ms", isOurs ? goal("<=", 0.4, r.throughput.serverCpuMsPerJob) : {});
  add("worker processes' CPU per job (together)", r.throughput.workersCpuMsPerJob, "ms");
  add("creating client's CPU per job", r.throughput.creatorCpuMsPerJob, "ms");
  add("offer latency p50, idle workers", r.latency.offerLatencyMs.p50, "ms");
  add("offer latency p99, idle workers", r.latency.offerLatencyMs.p99, "ms", isOurs ? goal("<", 10, r.latency.offerLatencyMs.p99) : {});
  add("offer latency p50 under load", r.throughput.offerLatencyMs.p50, "ms");
  add("worker holds job → completion confirmed, p50 under load", r.throughput.serviceMs.p50, "ms");
  add("completion confirmed → same worker's next job, p50 under load", r.throughput.handoffMs.p50, "ms");
  add("offer latency p99 under load", r.throughput.offerLatencyMs.p99, "ms");
  if (r.name.startsWith("Studio PG")) for (const [label, ms] of cpuPerJob(r)) add(`CPU per job, ${label}`, ms, "ms");
  if (r.crossLatency) {
    add("offer latency p50, created on A, idle worker on B", r.crossLatency.offerLatencyMs.p50, "ms");
    add("offer latency p99, created on A, idle worker on B", r.crossLatency.offerLatencyMs.p99, "ms", goal("<", 20, r.crossLatency.offerLatencyMs.p99));
  }
}
const pgOne = results.find((r) => r.name.startsWith("Studio PG x1"));
const pgTwo = results.find((r) => r.name.startsWith("Studio PG x2"));
if (pgOne && pgTwo)
  figures.push({
    bench: "dispatch: Studio PG x2 / PG x1",
    metric: "throughput scaling, one replica to two",
    value: pgTwo.throughput.jobsPerSecond / pgOne.throughput.jobsPerSecond,
    unit: "x",
  });
if (ours && pgOne)
  figures.push({ bench: "dispatch: Studio PG x1 / SQLite", metric: "throughput ratio", value: pgOne.throughput.jobsPerSecond / ours.throughput.jobsPerSecond, unit: "x" });
for (const side of [ours, oursStreamed]) {
  if (!side || !theirs) continue;
  const ratio = side.throughput.jobsPerSecond / theirs.throughput.jobsPerSecond;
  figures.push({ bench: `dispatch: ${side.name} / BullMQ`, metric: "throughput ratio", value: ratio, unit: "x", ...goal(">=", 1, ratio) });
  const idleRatio = side.latency.offerLatencyMs.p99 / theirs.latency.offerLatencyMs.p99;
  figures.push({
    bench: `dispatch: ${side.name} / BullMQ`,
    metric: "idle offer latency p99 ratio",
    value: idleRatio,
    unit: "x",
    ...goal("<=", 1, idleRatio),
  });
}
if (studioSyscalls !== undefined)
  figures.push({ bench: "dispatch: Studio", metric: "studio system calls per job (strace)", value: studioSyscalls.total / jobs, unit: "" });
if (studioInstructions !== undefined)
  figures.push({ bench: "dispatch: Studio", metric: "studio instructions per job (callgrind)", value: studioInstructions / jobs, unit: "" });
emitFigures("dispatch", figures, { jobs, workers, window, latencyJobs, smoke, results, redisSettings });
process.exit(0);
