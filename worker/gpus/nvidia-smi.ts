import { GpuOutputError, MiB, type GpuProcessReading, type GpuReading } from "./types.js";

/** The inventory query (the columns and units nvidia-smi documents for --query-gpu). */
export const NVIDIA_GPU_QUERY = ["--query-gpu=index,uuid,name,memory.total,memory.used", "--format=csv,noheader,nounits"] as const;
/** The processes on the GPUs, to tell the memory the worker's own engines hold from everyone else's. */
export const NVIDIA_APPS_QUERY = ["--query-compute-apps=gpu_uuid,pid,used_memory", "--format=csv,noheader,nounits"] as const;

/** nvidia-smi's exit status when the driver is up and there is no GPU. */
export const NVIDIA_NO_DEVICES_STATUS = 6;

const quote = (line: string) => JSON.stringify(line.length > 160 ? `${line.slice(0, 160)}...` : line);
const lines = (text: string) => text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "");
const whole = /^\d+$/;
const mib = /^\d+(\.\d+)?$/;

/**
 * Reads NVIDIA_GPU_QUERY's output: one line per GPU, "0, GPU-<uuid>, NVIDIA GeForce RTX 4090, 24564, 1234"
 * (memory in MiB). A name may hold ", ", so the name is whatever lies between the uuid and the two
 * memory columns. Anything else ("[N/A]" memory, a driver message, garbage) is a GpuOutputError
 * naming the line.
 */
export function parseNvidiaGpus(text: string): GpuReading[] {
  const gpus: GpuReading[] = [];
  for (const line of lines(text)) {
    const parts = line.split(",").map((p) => p.trim());
    if (parts.length < 5) throw new GpuOutputError(`nvidia-smi printed ${quote(line)}, not "index, uuid, name, memory.total, memory.used"`);
    const [index, uuid] = parts as [string, string];
    const total = parts.at(-2)!;
    const used = parts.at(-1)!;
    const name = parts.slice(2, -2).join(", ");
    if (!whole.test(index) || !/^GPU-[0-9A-Za-z-]{1,120}$/.test(uuid) || name === "" || !mib.test(total) || !mib.test(used))
      throw new GpuOutputError(`nvidia-smi printed ${quote(line)}, not "index, uuid, name, memory.total, memory.used" in MiB`);
    const totalBytes = Math.round(Number(total) * MiB);
    const usedBytes = Math.round(Number(used) * MiB);
    if (totalBytes <= 0 || usedBytes > totalBytes) throw new GpuOutputError(`nvidia-smi printed ${quote(line)}: memory used is not within a positive total`);
    if (gpus.some((g) => g.index === Number(index))) throw new GpuOutputError(`nvidia-smi listed GPU ${index} twice`);
    gpus.push({ index: Number(index), uuid, name: name.slice(0, 256), vendor: "nvidia", totalBytes, usedBytes });
  }
  return gpus;
}

/** Reads NVIDIA_APPS_QUERY's output: "GPU-<uuid>, 12345, 1024" per process (MiB; "[N/A]" where the driver does not say). */
export function parseNvidiaApps(text: string): GpuProcessReading[] {
  const out: GpuProcessReading[] = [];
  for (const line of lines(text)) {
    if (/^no running (processes|compute applications) found/i.test(line)) continue;
    const parts = line.split(",").map((p) => p.trim());
    if (parts.length !== 3 || !parts[0]!.startsWith("GPU-") || !whole.test(parts[1]!))
      throw new GpuOutputError(`nvidia-smi printed ${quote(line)}, not "gpu_uuid, pid, used_memory"`);
    const used = parts[2]!;
    out.push({ gpuUuid: parts[0]!, pid: Number(parts[1]), usedBytes: mib.test(used) ? Math.round(Number(used) * MiB) : undefined });
  }
  return out;
}
