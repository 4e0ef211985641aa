import { accessSync, constants, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/**
 * dist/studio-worker, the compiled worker operators run (`bun run build:worker`): found, built
 * and checked against its sources here, for the demo, the benchmarks and the end-to-end tests.
 */
const ROOT = join(import.meta.dir, "..");
const BINARY = join(ROOT, "dist", "studio-worker");

/** What the binary is compiled from: the worker, the contract and generated types it imports, its dependencies. */
const WORKER_INPUTS = ["worker", "contract", "gen", "package.json", "bun.lock"];

/** The compiled worker when it exists and is executable, else undefined. */
export function compiledWorker(): string | undefined {
  try {
    accessSync(BINARY, constants.X_OK);
    return BINARY;
  } catch {
    return undefined;
  }
}

/**
 * Compiles the worker with the project's own `bun run build:worker` (the binary operators get) and
 * returns its path; throws with the build's stderr when it fails. Synchronous: every caller builds
 * before it starts anything that could run meanwhile.
 */
export function buildWorker(): string {
  const build = Bun.spawnSync([process.execPath, "run", "build:worker"], { cwd: ROOT, stdout: "ignore", stderr: "pipe" });
  if (build.exitCode !== 0) throw new Error(`bun run build:worker failed: ${build.stderr.toString()}`);
  return BINARY;
}

/**
 * True when a file the binary is compiled from changed (or was added or removed) after the binary
 * was written, so it would run older code. By modification time: a git checkout or merge touches
 * what it changes. About a hundred stats.
 */
export function olderThanSources(binary: string): boolean {
  const built = statSync(binary).mtimeMs;
  return WORKER_INPUTS.some((input) => newestChange(join(ROOT, input)) > built);
}

function newestChange(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...readdirSync(path, { recursive: true }).map((name) => statSync(join(path, String(name))).mtimeMs));
}
