import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { delimiter } from "node:path";
import { GPU_TOOLS_DIR, fakeGpus, nvidiaCard } from "./fake-gpus.js";

/** Explicit: real processes on a loaded 2-core machine can take longer than bun's 5 s default. */
const TEST_TIMEOUT_MS = 30_000;
const MAIN = join(import.meta.dir, "../../../worker/main.ts");

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** Runs the worker program to its exit (a bad configuration ends it before it connects anywhere). */
function run(args: string[], env: Record<string, string>) {
  return Bun.spawnSync([process.execPath, MAIN, "--server", "http://127.0.0.1:1", "--engines", "synthetic", ...args], {
    env: { HOME: tmpdir(), XDG_CACHE_HOME: join(tmpdir(), `gpu-startup-${process.pid}`), ...env },
  });
}

describe("start-up with GPUs", () => {
  test("--gpus naming a GPU the stand-in nvidia-smi does not list stops start-up, listing the GPUs found", () => {
    const gpus = fakeGpus({ cards: [nvidiaCard("NVIDIA GeForce RTX 4090", 24564), nvidiaCard("NVIDIA GeForce RTX 3090", 24576)] });
    cleanups.push(gpus.cleanup);
    const r = run(["--gpus", "0,2"], { ...gpus.env, PATH: `${GPU_TOOLS_DIR}${delimiter}${process.env.PATH}` });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.toString().trim()).toBe(
      "studio-worker: bad configuration: --gpus names GPU 2, which this machine does not have: the GPUs found are 0 (NVIDIA GeForce RTX 4090), 1 (NVIDIA GeForce RTX 3090)",
    );
  }, TEST_TIMEOUT_MS);

  test("--gpus naming a GPU where nvidia-smi prints garbage says why none was found", () => {
    const gpus = fakeGpus({ mode: "garbage", cards: [nvidiaCard("NVIDIA T4", 15360)] });
    cleanups.push(gpus.cleanup);
    const r = run(["--gpus", "0", "--nvidia-smi", join(GPU_TOOLS_DIR, "nvidia-smi")], { ...gpus.env, PATH: "/usr/bin:/bin" });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.toString()).toContain("--gpus names GPU 0, which this machine does not have: no GPU was found (nvidia-smi printed");
  }, TEST_TIMEOUT_MS);

  test("--nvidia-smi that is no program stops start-up", () => {
    const r = run(["--nvidia-smi", "/nonexistent/nvidia-smi"], { PATH: "/usr/bin:/bin" });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.toString()).toContain("--nvidia-smi: /nonexistent/nvidia-smi is not an executable file");
  }, TEST_TIMEOUT_MS);
});
