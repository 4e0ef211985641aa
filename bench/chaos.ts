#!/usr/bin/env bun
/**
 * The chaos soak, by hand: `bun bench/chaos.ts --minutes 10`. The same run as test/chaos (real studio
 * and worker processes, kill -9 of workers and of the studio, SIGSTOP past the lease TTL), for longer,
 * then the invariants and the figures. Exit 0 when every invariant held, 1 otherwise. `--seed N` replays
 * the random choices of the run that printed that seed.
 */
import { parseArgs } from "node:util";
import { formatFigures } from "../test/chaos/figures.js";
import { runChaos } from "../test/chaos/chaos-run.js";
import { chaosSeed } from "../test/chaos/random.js";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "5" },
    "synthetic-workers": { type: "string", default: "3" },
    "sd-workers": { type: "string", default: "2" },
    "studio-kills": { type: "string" },
    "keep-dir": { type: "boolean", default: false },
    seed: { type: "string" },
    quiet: { type: "boolean", default: false },
  },
});
const minutes = Number(values.minutes);
if (!(minutes > 0)) {
  console.error(`bench/chaos: --minutes must be a positive number (got ${JSON.stringify(values.minutes)})`);
  process.exit(2);
}
let seed: number;
try {
  seed = chaosSeed(values.seed, "bench/chaos: --seed");
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
console.log(`seed ${seed} (replay with --seed ${seed})`);
const t0 = Date.now();
const durationMs = Math.round(minutes * 60_000);
const result = await runChaos({
  durationMs,
  syntheticWorkers: Number(values["synthetic-workers"]),
  sdWorkers: Number(values["sd-workers"]),
  // Two restarts per run at least, and one more for every five minutes.
  studioKills: values["studio-kills"] !== undefined ? Number(values["studio-kills"]) : Math.max(2, Math.floor(minutes / 5) + 1),
  keepDir: values["keep-dir"],
  seed,
  log: values.quiet ? undefined : (line) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`),
});

console.log(formatFigures(result));
if (result.violations.length > 0) {
  console.log(`\n${result.violations.length} invariant(s) broken (data kept in ${result.dir}; seed ${seed}):`);
  for (const v of result.violations.slice(0, 50)) console.log(`  - ${v}`);
  process.exit(1);
}
console.log("\nevery invariant held");
