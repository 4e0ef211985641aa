import type { GpuReading } from "./types.js";

/** --gpus: every GPU found, none (CPU only, no look), or the listed indexes. */
export type GpuChoice = { kind: "all" } | { kind: "none" } | { kind: "list"; indexes: number[] };

/** A GPU the worker runs jobs on, with how many of its slots run there. */
export interface PlannedGpu {
  gpu: GpuReading;
  slots: number;
}

/** Which slot runs where: each slot's GPU index (undefined: CPU). */
export interface SlotPlan {
  /** One entry per slot: the index of its GPU, or undefined for a CPU slot. */
  slotGpus: Array<number | undefined>;
  gpus: PlannedGpu[];
  /** What start-up should say about the plan (GPUs left without a slot). */
  notes: string[];
}

/** A plan that cannot run; names the flag and what is wrong (start-up stops with it). */
export class GpuPlanError extends Error {
  readonly code = "bad_gpu_plan";
  constructor(message: string) {
    super(message);
    this.name = "GpuPlanError";
  }
}

/** Most GPU indexes one flag may list, and the highest index taken. */
export const MAX_GPU_INDEX = 1023;

/** Parses --gpus: "all", "none", or a comma list of indexes ("0,2"). */
export function parseGpuChoice(text: string): GpuChoice | string {
  const t = text.trim().toLowerCase();
  if (t === "all") return { kind: "all" };
  if (t === "none") return { kind: "none" };
  const indexes = parseIndexList(t);
  if (typeof indexes === "string") return `must be all, none, or GPU indexes like 0,2 (${indexes})`;
  if (new Set(indexes).size !== indexes.length) return `names a GPU twice (got ${JSON.stringify(text)})`;
  return { kind: "list", indexes };
}

/** Parses a comma list of GPU indexes ("0,0,1"); a message when it is not one. */
export function parseIndexList(text: string): number[] | string {
  const parts = text.split(",").map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => !/^\d{1,4}$/.test(p) || Number(p) > MAX_GPU_INDEX))
    return `got ${JSON.stringify(text)}; indexes run from 0 to ${MAX_GPU_INDEX}`;
  return parts.map(Number);
}

const describeGpu = (g: GpuReading) => `${g.index} (${g.name})`;

/**
 * Decides which GPUs the worker uses and which slot runs on which: by default one slot per GPU
 * used (two jobs never share a card by accident); `slots` spreads that many slots over the GPUs in
 * turn (slot i on the i-th GPU, wrapping: several jobs per large card); `slotGpus` names each
 * slot's GPU outright. Without a GPU every slot runs on the CPU. `found` is what the inventory
 * read; `why` says why it found none, for the message when --gpus names GPUs.
 */
export function planSlots(
  choice: GpuChoice,
  found: GpuReading[],
  { slots, slotGpus, why = "" }: { slots?: number; slotGpus?: number[]; why?: string },
): SlotPlan {
  let used: GpuReading[];
  if (choice.kind === "none") used = [];
  else if (choice.kind === "all") used = found;
  else {
    const missing = choice.indexes.filter((i) => !found.some((g) => g.index === i));
    if (missing.length > 0) {
      const have =
        found.length === 0
          ? `no GPU was found${why ? ` (${why})` : ""}`
          : `the GPUs found are ${found.map(describeGpu).join(", ")}`;
      throw new GpuPlanError(`--gpus names GPU ${missing.join(", ")}, which this machine does not have: ${have}`);
    }
    used = found.filter((g) => choice.indexes.includes(g.index));
  }
  if (used.length === 0) {
    if (slotGpus !== undefined)
      throw new GpuPlanError(`--slot-gpus maps slots to GPUs, but this worker uses none${choice.kind === "none" ? " (--gpus none)" : why ? ` (${why})` : ""}`);
    return { slotGpus: Array.from({ length: slots ?? 1 }, () => undefined), gpus: [], notes: [] };
  }
  let map: number[];
  if (slotGpus !== undefined) {
    if (slots !== undefined && slots !== slotGpus.length)
      throw new GpuPlanError(`--slots ${slots} and --slot-gpus (${slotGpus.length} slots) disagree; give one of them`);
    const unknown = slotGpus.filter((i) => !used.some((g) => g.index === i));
    if (unknown.length > 0)
      throw new GpuPlanError(`--slot-gpus names GPU ${[...new Set(unknown)].join(", ")}, which this worker does not use: it uses ${used.map(describeGpu).join(", ")}`);
    map = slotGpus;
  } else {
    const n = slots ?? used.length;
    map = Array.from({ length: n }, (_, i) => used[i % used.length]!.index);
  }
  const gpus = used.map((gpu) => ({ gpu, slots: map.filter((i) => i === gpu.index).length })).filter((g) => g.slots > 0);
  const idle = used.filter((g) => !map.includes(g.index));
  const notes = idle.map((g) => `GPU ${describeGpu(g)} runs no slot (${slotGpus ? "--slot-gpus" : `--slots ${map.length}`}): it is not used`);
  return { slotGpus: map, gpus, notes };
}
