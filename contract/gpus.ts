import type { VramRequirement } from "../gen/studio/v1/model_pb.js";
import type { GpuDevice } from "../gen/studio/v1/worker_service_pb.js";
import { formatVram } from "./vram.js";

/**
 * One GPU of a worker for people, as the CLI and the Workers page show it:
 * "0 NVIDIA GeForce RTX 4090: 20.1 of 24.0 GiB free, 1/1 slots busy".
 */
export function gpuSummary(g: GpuDevice): string {
  const total = Number(g.totalMemoryBytes);
  const free = Number(g.freeMemoryBytes);
  const held = Number(g.workerMemoryBytes);
  const heldText = held > 0 ? ` (${formatVram(held)} held by its engines)` : "";
  return `${g.index} ${g.name}: ${formatVram(free)} of ${formatVram(total)} free${heldText}, ${g.slotsInUse}/${g.slots} slot${g.slots === 1 ? "" : "s"} busy`;
}

/** A job's or model's GPU memory for people: "8.9 GiB (estimated)", "20.0 GiB", or "-" when none is counted. */
export function vramText(v: VramRequirement | undefined): string {
  if (!v) return "-";
  return `${formatVram(Number(v.bytes))}${v.estimated ? " (estimated from the files' sizes)" : ""}`;
}
