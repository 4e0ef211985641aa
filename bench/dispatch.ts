#!/usr/bin/env bun
/**
 * Dispatch throughput and offer latency, Studio and BullMQ side by side in one run (issue 9):
 * N jobs with a small task, M worker processes with one slot each, every job returning 1 KiB.
 *
 * Studio: jobs created through JobService (Connect over HTTP/2) on a studio child process with a
 * fresh SQLite file, offered over Session streams to bench/lib/session-worker.ts processes, the
 * 1 KiB PNG committed to the store. BullMQ: queue.add on a private redis-server, one Worker per
 * process, the 1 KiB string as the job's return value.
 *
 * Phases per side: a warm-up, throughput (N jobs, `--window` creates in flight), then idle offer
 * latency (jobs created one at a time, each after the previous completed, so workers are idle).
 *
 *   bun bench/dispatch.ts [--jobs 10000] [--workers 4] [--window 64] [--latency-jobs 500] [--smoke]
 *                         [--only studio|bullmq] [--studio-log-level info] [--cpu-prof DIR]
 */
import { parseArgs } from "node:util";
import { startBullmqSide } from "./lib/bullmq-side.js";
import { exitOnSignals } from "./lib/child.js";
import { idleLatencyPhase, throughputPhase, type LatencyResult, type QueueUnderTest, type ThroughputResult } from "./lib/queue-phases.js";
import { startRedis } from "./lib/redis-server.js";
import { emitFigures, fmt, goal, markdownTable, type Figure } from "./lib/report.js";
import { startStudioProcess } from "./lib/studio-process.js";
import { startStudioSide } from "./lib/studio-side.js";

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
  },
});
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
}

async function measure(q: QueueUnderTest): Promise<SideResult> {
  console.error(`${q.name}: warm-up (${warmupJobs} jobs)`);
  await throughputPhase(q, { jobs: warmupJobs, window });
  console.error(`${q.name}: throughput (${jobs} jobs, ${workers} workers, ${window} creates in flight)`);
  const throughput = await throughputPhase(q, { jobs, window });
  console.error(`${q.name}: ${fmt(throughput.jobsPerSecond)} jobs/s; idle latency (${latencyJobs} jobs one at a time)`);
  const latency = await idleLatencyPhase(q, { jobs: latencyJobs });
  return { name: q.name, throughput, latency };
}

async function runStudio(): Promise<SideResult> {
  const extraArgs: string[] = [];
  const studio = await startStudioProcess({
    logLevel: args["studio-log-level"],
    extraArgs,
    ...(args["cpu-prof"] ? { bunArgs: ["--cpu-prof", `--cpu-prof-dir=${args["cpu-prof"]}`, "--cpu-prof-md"] } : {}),
  });
  try {
    const side = await startStudioSide(studio.url, { workers, studioPid: studio.pid });
    try {
      return await measure(side);
    } finally {
      await side.stop();
    }
  } catch (err) {
    console.error(studio.tail().join("\n"));
    throw err;
  } finally {
    await studio.stop();
  }
}

async function runBullmq(): Promise<SideResult> {
  const redis = await startRedis();
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

const results: SideResult[] = [];
if (args.only !== "bullmq") results.push(await runStudio());
if (args.only !== "studio") results.push(await runBullmq());

console.log(
  markdownTable(
    ["queue", "jobs/s end to end", "offer p50 under load (ms)", "offer p99 under load (ms)", "offer p50 idle (ms)", "offer p99 idle (ms)"],
    results.map((r) => [
      r.name,
      fmt(r.throughput.jobsPerSecond),
      fmt(r.throughput.offerLatencyMs.p50),
      fmt(r.throughput.offerLatencyMs.p99),
      fmt(r.latency.offerLatencyMs.p50),
      fmt(r.latency.offerLatencyMs.p99),
    ]),
  ),
);

const ours = results.find((r) => r.name === "Studio");
const theirs = results.find((r) => r.name === "BullMQ");
const figures: Figure[] = [];
const setup = `${jobs} jobs, ${workers} workers`;
for (const r of results) {
  const isOurs = r === ours;
  figures.push({
    bench: `dispatch: ${r.name}`,
    metric: "throughput end to end",
    value: r.throughput.jobsPerSecond,
    unit: "jobs/s",
    note: setup,
    ...(isOurs ? goal(">=", 1000, r.throughput.jobsPerSecond) : {}),
  });
  figures.push({
    bench: `dispatch: ${r.name}`,
    metric: `${r.name === "BullMQ" ? "redis-server" : "studio"} CPU during the throughput phase`,
    value: r.throughput.serverCpuPercent,
    unit: "% of a core",
  });
  figures.push({ bench: `dispatch: ${r.name}`, metric: "offer latency p50, idle workers", value: r.latency.offerLatencyMs.p50, unit: "ms" });
  figures.push({
    bench: `dispatch: ${r.name}`,
    metric: "offer latency p99, idle workers",
    value: r.latency.offerLatencyMs.p99,
    unit: "ms",
    ...(isOurs ? goal("<", 10, r.latency.offerLatencyMs.p99) : {}),
  });
  figures.push({ bench: `dispatch: ${r.name}`, metric: "offer latency p50 under load", value: r.throughput.offerLatencyMs.p50, unit: "ms" });
  figures.push({
    bench: `dispatch: ${r.name}`,
    metric: "worker holds job → completion confirmed, p50 under load",
    value: r.throughput.serviceMs.p50,
    unit: "ms",
  });
  figures.push({
    bench: `dispatch: ${r.name}`,
    metric: "completion confirmed → same worker's next job, p50 under load",
    value: r.throughput.handoffMs.p50,
    unit: "ms",
  });
  figures.push({ bench: `dispatch: ${r.name}`, metric: "offer latency p99 under load", value: r.throughput.offerLatencyMs.p99, unit: "ms" });
}
if (ours && theirs) {
  const ratio = ours.throughput.jobsPerSecond / theirs.throughput.jobsPerSecond;
  figures.push({ bench: "dispatch: Studio / BullMQ", metric: "throughput ratio", value: ratio, unit: "x", ...goal(">=", 1, ratio) });
  figures.push({
    bench: "dispatch: Studio / BullMQ",
    metric: "idle offer latency p99 ratio",
    value: ours.latency.offerLatencyMs.p99 / theirs.latency.offerLatencyMs.p99,
    unit: "x",
  });
}
emitFigures("dispatch", figures, { jobs, workers, window, latencyJobs, smoke, results });
process.exit(0);
