#!/usr/bin/env bun
/**
 * `bun run bench`: every benchmark, one after another (they would distort each other side by
 * side on two cores), each as its own process. Prints each one's output as it goes, then the
 * README's Performance table for all of them with the machine they ran on.
 *
 *   bun bench/run-all.ts [--smoke] [--only dispatch,scale,worker-start,download,engine-overhead,openai-stream]
 *
 * bench/download.ts (the download issue's benchmark) runs from here when present; its figures
 * join the table if it prints BENCH_RESULT lines, else its output is shown as it is.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { exitOnSignals } from "./lib/child.js";
import { loadAverage, machineLine } from "./lib/machine.js";
import { figuresTable, parseFigures, type Figure } from "./lib/report.js";

const BENCHES = ["dispatch", "scale", "worker-start", "download", "engine-overhead", "openai-stream"] as const;
exitOnSignals();

const { values: args } = parseArgs({
  options: { smoke: { type: "boolean", default: false }, only: { type: "string" } },
});
const only = args.only?.split(",").map((s) => s.trim());
const unknown = only?.filter((n) => !(BENCHES as readonly string[]).includes(n)) ?? [];
if (unknown.length > 0) {
  console.error(`run-all: unknown benchmark ${unknown.join(", ")}; choose from ${BENCHES.join(", ")}`);
  process.exit(2);
}

const figures: Figure[] = [];
const failed: string[] = [];
const loadBefore = loadAverage();
for (const name of BENCHES) {
  if (only && !only.includes(name)) continue;
  const script = join(import.meta.dir, `${name}.ts`);
  if (!existsSync(script)) {
    console.log(`\n== ${name}: bench/${name}.ts is not there yet; skipped`);
    continue;
  }
  console.log(`\n== ${name}${args.smoke ? " (smoke)" : ""}`);
  const proc = Bun.spawn([process.execPath, script, ...(args.smoke ? ["--smoke"] : [])], {
    stdout: "pipe",
    stderr: "inherit",
  });
  // Interrupted: the running benchmark gets SIGTERM and stops its own children.
  const forward = () => proc.kill("SIGTERM");
  process.once("exit", forward);
  let out = "";
  const decoder = new TextDecoder();
  for await (const chunk of proc.stdout) {
    const text = decoder.decode(chunk, { stream: true });
    out += text;
    process.stdout.write(text);
  }
  const code = await proc.exited;
  process.off("exit", forward);
  if (code !== 0) failed.push(`${name} (exit ${code})`);
  for (const r of parseFigures(out)) figures.push(...r.figures);
}

const load = `1-minute load average ${loadBefore} before, ${loadAverage()} after`;
console.log(`\n## Performance\n\nMeasured on ${machineLine()}; ${load}${args.smoke ? " (smoke run: tiny sizes, not for quoting)" : ""}.\n`);
console.log(figuresTable(figures));
if (failed.length > 0) {
  console.error(`\nrun-all: failed: ${failed.join(", ")}`);
  process.exit(1);
}
