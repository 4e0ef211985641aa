import { describe, expect, test } from "bun:test";
import { GpuPlanError, parseGpuChoice, planSlots } from "../../../worker/gpus/gpu-plan.js";
import { parseWorkerArgs } from "../../../worker/ui/cli-options.js";
import { ConfigError } from "../../../contract/settings.js";
import type { GpuReading } from "../../../worker/gpus/types.js";

const GiB = 1024 ** 3;
const gpu = (index: number, name = "NVIDIA GeForce RTX 4090"): GpuReading => ({
  index,
  uuid: `GPU-${index}`,
  name,
  vendor: "nvidia",
  totalBytes: 24 * GiB,
  usedBytes: 0,
});
const four = [gpu(0), gpu(1), gpu(2), gpu(3)];

describe("--gpus", () => {
  test("all, none or indexes", () => {
    expect(parseGpuChoice("all")).toEqual({ kind: "all" });
    expect(parseGpuChoice(" None ")).toEqual({ kind: "none" });
    expect(parseGpuChoice("0,2")).toEqual({ kind: "list", indexes: [0, 2] });
    expect(parseGpuChoice("0,0")).toBe('names a GPU twice (got "0,0")');
    expect(parseGpuChoice("first")).toBe('must be all, none, or GPU indexes like 0,2 (got "first"; indexes run from 0 to 1023)');
  });

  test("bad values stop start-up naming the flag and its variable", () => {
    const parse = (args: string[], env: Record<string, string> = {}) => parseWorkerArgs(["bun", "w", "--server", "http://s", ...args], { env });
    expect(() => parse(["--gpus", "1,x"])).toThrow(ConfigError);
    expect(() => parse(["--gpus", "1,x"])).toThrow(/--gpus \(STUDIO_GPUS\)/);
    expect(() => parse(["--slot-gpus", "0,-1"])).toThrow(/--slot-gpus \(STUDIO_SLOT_GPUS\): must list each slot's GPU index/);
    expect(parse([], { STUDIO_GPUS: "1,3", STUDIO_SLOT_GPUS: "1,1,3" })).toMatchObject({ gpus: { kind: "list", indexes: [1, 3] }, slotGpus: [1, 1, 3] });
  });
});

describe("slots on GPUs", () => {
  test("one slot per GPU by default", () => {
    const plan = planSlots({ kind: "all" }, four, {});
    expect(plan.slotGpus).toEqual([0, 1, 2, 3]);
    expect(plan.gpus.map((g) => [g.gpu.index, g.slots])).toEqual([[0, 1], [1, 1], [2, 1], [3, 1]]);
    expect(plan.notes).toEqual([]);
  });

  test("--gpus picks some; --slots spreads over them in turn; --slot-gpus maps each slot", () => {
    expect(planSlots({ kind: "list", indexes: [2, 0] }, four, {}).slotGpus).toEqual([0, 2]);
    expect(planSlots({ kind: "list", indexes: [0, 2] }, four, { slots: 5 }).slotGpus).toEqual([0, 2, 0, 2, 0]);
    const mapped = planSlots({ kind: "all" }, four, { slotGpus: [1, 1, 3] });
    expect(mapped.gpus.map((g) => [g.gpu.index, g.slots])).toEqual([[1, 2], [3, 1]]);
    expect(mapped.notes).toEqual([
      "GPU 0 (NVIDIA GeForce RTX 4090) runs no slot (--slot-gpus): it is not used",
      "GPU 2 (NVIDIA GeForce RTX 4090) runs no slot (--slot-gpus): it is not used",
    ]);
    expect(planSlots({ kind: "all" }, four, { slots: 2 }).notes).toHaveLength(2);
  });

  test("without a GPU (none found, or --gpus none) the slots are CPU slots", () => {
    expect(planSlots({ kind: "all" }, [], {})).toEqual({ slotGpus: [undefined], gpus: [], notes: [] });
    expect(planSlots({ kind: "none" }, four, { slots: 3 }).slotGpus).toEqual([undefined, undefined, undefined]);
  });

  test("a GPU that is not there stops start-up, listing the GPUs found", () => {
    expect(() => planSlots({ kind: "list", indexes: [0, 7] }, [gpu(0), gpu(1, "NVIDIA RTX A6000")], {})).toThrow(
      new GpuPlanError("--gpus names GPU 7, which this machine does not have: the GPUs found are 0 (NVIDIA GeForce RTX 4090), 1 (NVIDIA RTX A6000)"),
    );
    expect(() => planSlots({ kind: "list", indexes: [0] }, [], { why: "nvidia-smi is not on PATH" })).toThrow(
      "--gpus names GPU 0, which this machine does not have: no GPU was found (nvidia-smi is not on PATH)",
    );
    expect(() => planSlots({ kind: "list", indexes: [1] }, four, { slotGpus: [1, 2] })).toThrow(
      "--slot-gpus names GPU 2, which this worker does not use: it uses 1 (NVIDIA GeForce RTX 4090)",
    );
    expect(() => planSlots({ kind: "all" }, four, { slots: 3, slotGpus: [1, 2] })).toThrow("--slots 3 and --slot-gpus (2 slots) disagree; give one of them");
    expect(() => planSlots({ kind: "none" }, four, { slotGpus: [0] })).toThrow("--slot-gpus maps slots to GPUs, but this worker uses none (--gpus none)");
  });
});
