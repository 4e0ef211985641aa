import type { VramRequirement } from "../gen/studio/v1/model_pb.js";
import type { GpuDevice } from "../gen/studio/v1/worker_service_pb.js";
import { formatBytes } from "./byte-size.js";

/**
 * One GPU of a worker for people, as the CLI and the Workers page show it:
 * "0 NVIDIA GeForce RTX 4090: 20 GiB of 24 GiB free, 1/1 slot busy".
 */
export function gpuSummary(g: GpuDevice): string {
  const total = Number(g.totalMemoryBytes);
  const free = Number(g.freeMemoryBytes);
  const held = Number(g.workerMemoryBytes);
  const heldText = held > 0 ? ` (${formatBytes(held)} held by its engines)` : "";
  return `${g.index} ${g.name}: ${formatBytes(free)} of ${formatBytes(total)} free${heldText}, ${g.slotsInUse}/${g.slots} slot${g.slots === 1 ? "" : "s"} busy`;
}

/** A job's or model's GPU memory for people: "8.9 GiB (estimated from the files' sizes)", "20 GiB", or "-" when none is counted. */
export function vramText(v: VramRequirement | undefined): string {
  if (!v) return "-";
  return `${formatBytes(Number(v.bytes))}${v.estimated ? " (estimated from the files' sizes)" : ""}`;
}
