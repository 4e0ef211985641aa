#!/usr/bin/env bun
/**
 * Worker start (issue 9): how long the compiled worker (dist/studio-worker, `bun run build:worker`)
 * takes from exec to an established session, and its RSS once idle. The worker logs
 * "connected to the studio" when welcome arrives; the studio's ListWorkers confirms it.
 * The same is measured for `bun worker/main.ts` (from source) for comparison.
 *
 *   bun bench/worker-start.ts [--runs 5] [--idle-seconds 3] [--build] [--smoke]
 *
 * Without the binary it is built first (--smoke measures the source only, to stay quick).
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { WorkerService } from "../gen/studio/v1/worker_service_pb.js";
import { buildWorker, compiledWorker } from "../scripts/worker-binary.js";
import { exitOnSignals, terminate } from "./lib/child.js";
import { rssBytes } from "./lib/proc-stats.js";
import { emitFigures, fmt, type Figure } from "./lib/report.js";
import { summarize } from "./lib/stats.js";
import { startStudioProcess } from "./lib/studio-process.js";

exitOnSignals();
const ROOT = join(import.meta.dir, "..");
const { values: args } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    runs: { type: "string" },
    "idle-seconds": { type: "string" },
    build: { type: "boolean", default: false },
  },
});
const smoke = args.smoke!;
const runs = Number(args.runs ?? (smoke ? 1 : 5));
const idleSeconds = Number(args["idle-seconds"] ?? (smoke ? 0.3 : 3));

let binary = compiledWorker();
if (args.build || (!binary && !smoke)) {
  console.error("building dist/studio-worker (bun run build:worker)");
  binary = buildWorker();
}

interface StartRun {
  toSessionMs: number;
  idleRss: number;
}

/** Starts the worker, times exec → "connected to the studio", checks ListWorkers, reads idle RSS, stops it. */
async function startOnce(program: string[], url: string, name: string): Promise<StartRun> {
  const scratch = mkdtempSync(join(tmpdir(), "worker-start-"));
  const argv = [...program, "--server", url, "--engines", "synthetic", "--name", name, "--cache-dir", join(scratch, "cache"),
    "--work-dir", join(scratch, "work"), "--log-level", "info", "--progress", "log"];
  const t0 = performance.now();
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  try {
    const decoder = new TextDecoder();
    let seen = "";
    let toSessionMs: number | undefined;
    const reader = proc.stdout.getReader();
    const deadline = setTimeout(() => proc.kill("SIGKILL"), 60_000);
    while (toSessionMs === undefined) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the worker exited before connecting:\n${seen}`);
      seen += decoder.decode(value, { stream: true });
      if (seen.includes('"connected to the studio"')) toSessionMs = performance.now() - t0;
    }
    clearTimeout(deadline);
    void (async () => {
      while (!(await reader.read()).done);
    })();
    const listed = await createClient(WorkerService, createConnectTransport({ baseUrl: url, httpVersion: "2" })).listWorkers({});
    if (!listed.workers.some((w) => w.name === name)) throw new Error(`the worker logged a session but ListWorkers does not list ${name}`);
    await Bun.sleep(idleSeconds * 1000);
    return { toSessionMs, idleRss: rssBytes(proc.pid) };
  } finally {
    await terminate(proc, 10_000);
    rmSync(scratch, { recursive: true, force: true });
  }
}

const studio = await startStudioProcess();
const figures: Figure[] = [];
try {
  const kinds: Array<[string, string[]]> = [];
  if (binary) kinds.push(["compiled binary", [binary]]);
  kinds.push(["from source (bun worker/main.ts)", [process.execPath, join(ROOT, "worker", "main.ts")]]);
  for (const [label, program] of kinds) {
    const results: StartRun[] = [];
    for (let i = 0; i < runs; i++) results.push(await startOnce(program, studio.url, `start-${i}-${Date.now()}`));
    const times = summarize(results.map((r) => r.toSessionMs));
    const rss = summarize(results.map((r) => r.idleRss / 2 ** 20));
    console.error(`${label}: start to session p50 ${fmt(times.p50)} ms (max ${fmt(times.max)}), idle RSS ${fmt(rss.p50)} MiB`);
    const b = `worker start: ${label}`;
    figures.push(
      { bench: b, metric: "exec to session established, median", value: times.p50, unit: "ms", note: `${runs} runs` },
      { bench: b, metric: "exec to session established, slowest", value: times.max, unit: "ms" },
      { bench: b, metric: "idle RSS, median", value: rss.p50, unit: "MiB", note: `after ${idleSeconds} s connected` },
    );
  }
  if (binary) figures.push({ bench: "worker start: compiled binary", metric: "binary size", value: statSync(binary).size / 2 ** 20, unit: "MiB" });
} finally {
  await studio.stop();
}
emitFigures("worker-start", figures, { runs, idleSeconds, smoke, binary: binary ?? null });
process.exit(0);
