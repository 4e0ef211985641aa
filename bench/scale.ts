#!/usr/bin/env bun
/**
 * Scale (issue 9): many simulated workers connected to one studio. The studio runs as a child
 * process so that its RSS and CPU can be read from /proc. Simulated workers are Session streams
 * over HTTP/2 (bench/lib/session-worker.ts, the real worker's SessionClient: hello, welcome,
 * heartbeats on the studio's interval), one HTTP/2 connection each unless --per-connection says
 * otherwise, spread over a few processes.
 *
 * Measures: studio RSS with every worker connected, studio CPU while idle (over at least one
 * heartbeat interval), then offer latency with jobs flowing (`--window` creates in flight).
 *
 *   bun bench/scale.ts [--workers 1000] [--processes 2] [--per-connection 1] [--idle-seconds 25]
 *                      [--jobs 3000] [--window 16] [--rate 50] [--smoke] [--cpu-prof DIR]
 *
 * Jobs flow twice: closed loop (`--window` creates in flight, as fast as the studio takes them;
 * this is the figure held against the goal) and open loop at a fixed `--rate` (a third as many jobs).
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { parseArgs } from "node:util";
import { WorkerService } from "../gen/studio/v1/worker_service_pb.js";
import { exitOnSignals } from "./lib/child.js";
import { mib, peakRssBytes, rssBytes, sampleCpu } from "./lib/proc-stats.js";
import { pacedPhase, throughputPhase } from "./lib/queue-phases.js";
import { emitFigures, fmt, goal, type Figure } from "./lib/report.js";
import { startStudioProcess } from "./lib/studio-process.js";
import { jobCreator, startSessionWorkers } from "./lib/studio-side.js";

exitOnSignals();
const { values: args } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    workers: { type: "string" },
    processes: { type: "string" },
    "per-connection": { type: "string", default: "1" },
    "idle-seconds": { type: "string" },
    jobs: { type: "string" },
    window: { type: "string", default: "16" },
    rate: { type: "string", default: "50" },
    "studio-log-level": { type: "string", default: "info" },
    "cpu-prof": { type: "string" },
  },
});
const smoke = args.smoke!;
const workerCount = Number(args.workers ?? (smoke ? 20 : 1000));
const processes = Math.min(workerCount, Number(args.processes ?? (smoke ? 1 : 2)));
const perConnection = Number(args["per-connection"]);
const idleSeconds = Number(args["idle-seconds"] ?? (smoke ? 1 : 25));
const jobs = Number(args.jobs ?? (smoke ? 20 : 3000));
const window = Number(args.window);
const rate = Number(args.rate);

const studio = await startStudioProcess({
  logLevel: args["studio-log-level"],
  // Every simulated worker connects from 127.0.0.1, where a real fleet comes from many addresses:
  // the per-address connection cap (1,000 by default) must leave room for them and the clients.
  extraArgs: ["--max-connections-per-address", String(Math.ceil(workerCount / perConnection) + 16)],
  ...(args["cpu-prof"] ? { bunArgs: ["--cpu-prof", `--cpu-prof-dir=${args["cpu-prof"]}`, "--cpu-prof-md"] } : {}),
});
const figures: Figure[] = [];
try {
  const rssBefore = rssBytes(studio.pid);
  console.error(`studio up (pid ${studio.pid}, RSS ${mib(rssBefore)} MiB); connecting ${workerCount} workers in ${processes} processes`);
  const t0 = performance.now();
  const sizes = Array.from({ length: processes }, (_, i) => Math.floor(workerCount / processes) + (i < workerCount % processes ? 1 : 0));
  const children = (
    await Promise.all(
      sizes.map((n, i) =>
        startSessionWorkers(studio.url, { count: 1, sessionsEach: n, perConnection, readyTimeoutMs: 180_000 }).then((c) => {
          c[0]!.onMessage = (m) => m.type === "error" && console.error(`workers ${i}: ${m.message}`);
          return c;
        }),
      ),
    )
  ).flat();
  const connectSeconds = (performance.now() - t0) / 1000;
  try {
    const listed = (await createClient(WorkerService, createConnectTransport({ baseUrl: studio.url, httpVersion: "2" })).listWorkers({})).workers;
    console.error(`${listed.length} workers listed by the studio after ${fmt(connectSeconds)} s; idle for ${idleSeconds} s`);
    await Bun.sleep(smoke ? 200 : 2000);
    const idle = await sampleCpu(studio.pid, idleSeconds);
    console.error(`idle: ${fmt(idle.cpuPercentOfCore)}% of a core, RSS ${mib(idle.rssBytes)} MiB; ${jobs} jobs flowing`);
    const q = { name: "Studio", workers: children, create: jobCreator(studio.url), serverPid: studio.pid };
    const flow = await throughputPhase(q, { jobs, window });
    const pacedJobs = Math.max(10, Math.round(jobs / 3));
    console.error(`${fmt(flow.jobsPerSecond)} jobs/s; now ${pacedJobs} jobs paced at ${rate} jobs/s`);
    const paced = await pacedPhase(q, { jobs: pacedJobs, perSecond: rate });
    const peak = peakRssBytes(studio.pid);
    const rssAfter = rssBytes(studio.pid);
    const b = "scale";
    const w = `${listed.length} workers`;
    figures.push(
      { bench: b, metric: "workers connected (ListWorkers)", value: listed.length, unit: "", note: `asked for ${workerCount}` },
      { bench: b, metric: "time to connect them all", value: connectSeconds, unit: "s" },
      { bench: b, metric: "studio RSS before workers", value: rssBefore / 2 ** 20, unit: "MiB" },
      { bench: b, metric: "studio RSS, workers connected, idle", value: idle.rssBytes / 2 ** 20, unit: "MiB", note: w, ...goal("<", 400, idle.rssBytes / 2 ** 20) },
      {
        bench: b,
        metric: "studio CPU at idle",
        value: idle.cpuPercentOfCore,
        unit: "% of a core",
        note: `${w}, ${fmt(idle.seconds)} s window`,
        ...goal("<", 10, idle.cpuPercentOfCore),
      },
      {
        bench: b,
        metric: "offer latency p99, jobs flowing",
        value: flow.offerLatencyMs.p99,
        unit: "ms",
        note: `${jobs} jobs, ${window} creates in flight`,
        ...goal("<", 50, flow.offerLatencyMs.p99),
      },
      { bench: b, metric: "offer latency p50, jobs flowing", value: flow.offerLatencyMs.p50, unit: "ms" },
      { bench: b, metric: "jobs/s while flowing", value: flow.jobsPerSecond, unit: "jobs/s" },
      { bench: b, metric: "offer latency p50, jobs paced", value: paced.offerLatencyMs.p50, unit: "ms", note: `${pacedJobs} jobs at ${rate}/s` },
      { bench: b, metric: "offer latency p99, jobs paced", value: paced.offerLatencyMs.p99, unit: "ms", note: `${pacedJobs} jobs at ${rate}/s` },
      { bench: b, metric: "studio peak RSS (VmHWM)", value: peak / 2 ** 20, unit: "MiB" },
      { bench: b, metric: "studio RSS after the jobs", value: rssAfter / 2 ** 20, unit: "MiB" },
    );
  } finally {
    await Promise.all(children.map((c) => c.stop(10_000)));
  }
} catch (err) {
  console.error(studio.tail().join("\n"));
  throw err;
} finally {
  await studio.stop();
}
emitFigures("scale", figures, { workers: workerCount, processes, perConnection, idleSeconds, jobs, window, rate, smoke });
process.exit(0);
