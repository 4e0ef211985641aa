import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";

/** The stand-in GPU tools (test/fixtures/gpu-tools): a dir to put on PATH, or each tool's path. */
export const GPU_TOOLS_DIR = resolve(import.meta.dir, "../../fixtures/gpu-tools");
export const FAKE_NVIDIA_SMI = join(GPU_TOOLS_DIR, "nvidia-smi");
export const FAKE_ROCM_SMI = join(GPU_TOOLS_DIR, "rocm-smi");

export interface FakeCard {
  name: string;
  uuid: string;
  totalMiB: number;
  usedMiB: number;
}

export interface FakeGpuState {
  mode?: "ok" | "hang" | "garbage" | "no-devices" | "no-driver";
  cards: FakeCard[];
  usage?: Array<{ match?: string; mib: number }>;
}

/** An NVIDIA card with a UUID of its own (so that no other test's engines count on it). */
export function nvidiaCard(name: string, totalMiB: number, usedMiB = 0): FakeCard {
  const h = randomBytes(16).toString("hex");
  return { name, totalMiB, usedMiB, uuid: `GPU-${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}` };
}

/** An AMD card, its unique id in rocm-smi's hex form. */
export function amdCard(name: string, totalMiB: number, usedMiB = 0): FakeCard {
  return { name, totalMiB, usedMiB, uuid: `0x${randomBytes(8).toString("hex")}` };
}

/**
 * A state file for the stand-in tools (FAKE_GPU_STATE), in a temp dir: `set` rewrites it (a card's
 * memory moves, the tool starts to hang), `calls` reads the argv of each call made since.
 */
export function fakeGpus(initial: FakeGpuState) {
  const dir = mkdtempSync(join(tmpdir(), "fake-gpus-"));
  const path = join(dir, "state.json");
  const callsFile = join(dir, "calls");
  writeFileSync(callsFile, "");
  let state = initial;
  const write = () => writeFileSync(path, JSON.stringify({ ...state, callsFile }));
  write();
  return {
    path,
    /** The environment the tools (and a worker that runs them) need. */
    env: { FAKE_GPU_STATE: path },
    get state() {
      return state;
    },
    set(next: Partial<FakeGpuState>) {
      state = { ...state, ...next };
      write();
    },
    calls(): Array<{ tool: string; argv: string[] }> {
      return readFileSync(callsFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
