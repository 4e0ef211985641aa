import { NVIDIA_APPS_QUERY, NVIDIA_GPU_QUERY, NVIDIA_NO_DEVICES_STATUS, parseNvidiaApps, parseNvidiaGpus } from "./nvidia-smi.js";
import { ROCM_QUERY, parseRocmGpus } from "./rocm-smi.js";
import { runTool, type ToolResult } from "./run-tool.js";
import { GpuOutputError, type GpuSnapshot, type GpuVendorName } from "./types.js";

/** The GPU tools found (a path each), or undefined where one is not installed. */
export interface GpuTools {
  nvidiaSmi?: string;
  rocmSmi?: string;
}

/** How long one tool run may take before it is killed and the answer is "no GPU". */
export const DEFAULT_TOOL_TIMEOUT_MS = 5000;

/**
 * One look at the GPUs: what was found (and by which tool), and, when nothing was, why: each
 * tool's problem (missing, hung, failed, unreadable output) or its plain "no GPU here".
 */
export interface InventoryResult {
  snapshot: GpuSnapshot;
  vendor?: GpuVendorName;
  /** Why a tool gave no GPUs: a problem (hung, failed, unreadable: warned about) ... */
  problems: string[];
  /** ... or a plain finding ("nvidia-smi found no GPU") ... */
  notes: string[];
  /** ... or it is not installed. */
  missing: string[];
}

const firstLine = (r: ToolResult) => (r.stderr.trim() || r.stdout.trim()).split(/\r?\n/)[0]?.slice(0, 200) ?? "";

function exitProblem(tool: string, r: ToolResult): string {
  const how = r.signal ? `was killed by ${r.signal}` : `exited with status ${r.code}`;
  const line = firstLine(r);
  return `${tool} ${how}${line ? `: ${line}` : ""}`;
}

/** Reads NVIDIA GPUs (and the processes on them); undefined with a problem or note when there are none. */
async function readNvidia(path: string, timeoutMs: number, out: InventoryResult): Promise<GpuSnapshot | undefined> {
  let r: ToolResult;
  try {
    r = await runTool(path, NVIDIA_GPU_QUERY, timeoutMs);
  } catch (err) {
    out.problems.push((err as Error).message);
    return undefined;
  }
  if (r.code === NVIDIA_NO_DEVICES_STATUS || /no devices were found/i.test(r.stdout)) {
    out.notes.push("nvidia-smi found no GPU");
    return undefined;
  }
  if (r.code !== 0) {
    out.problems.push(exitProblem("nvidia-smi", r));
    return undefined;
  }
  try {
    const gpus = parseNvidiaGpus(r.stdout);
    if (gpus.length === 0) {
      out.notes.push("nvidia-smi listed no GPU");
      return undefined;
    }
    return { gpus, processes: await readNvidiaApps(path, timeoutMs) };
  } catch (err) {
    if (!(err instanceof GpuOutputError)) throw err;
    out.problems.push(err.message);
    return undefined;
  }
}

/** The processes on NVIDIA GPUs; undefined when the query fails (memory is then counted by what jobs need). */
async function readNvidiaApps(path: string, timeoutMs: number): Promise<GpuSnapshot["processes"]> {
  try {
    const r = await runTool(path, NVIDIA_APPS_QUERY, timeoutMs);
    return r.code === 0 ? parseNvidiaApps(r.stdout) : undefined;
  } catch {
    return undefined;
  }
}

async function readRocm(path: string, timeoutMs: number, out: InventoryResult): Promise<GpuSnapshot | undefined> {
  let r: ToolResult;
  try {
    r = await runTool(path, ROCM_QUERY, timeoutMs);
  } catch (err) {
    out.problems.push((err as Error).message);
    return undefined;
  }
  if (r.code !== 0) {
    out.problems.push(exitProblem("rocm-smi", r));
    return undefined;
  }
  try {
    const gpus = parseRocmGpus(r.stdout);
    if (gpus.length === 0) {
      out.notes.push("rocm-smi found no GPU");
      return undefined;
    }
    return { gpus };
  } catch (err) {
    if (!(err instanceof GpuOutputError)) throw err;
    out.problems.push(err.message);
    return undefined;
  }
}

/**
 * Looks for GPUs: NVIDIA through nvidia-smi first, then AMD through rocm-smi (a machine with both
 * uses the NVIDIA cards). `only` limits the look to one vendor (the refreshes after start-up).
 * Never throws: a tool that is missing, hangs (killed after `timeoutMs`), fails or prints
 * something unreadable gives no GPUs and a problem saying so.
 */
export async function readInventory(
  tools: GpuTools,
  { timeoutMs = DEFAULT_TOOL_TIMEOUT_MS, only }: { timeoutMs?: number; only?: GpuVendorName } = {},
): Promise<InventoryResult> {
  const out: InventoryResult = { snapshot: { gpus: [] }, problems: [], notes: [], missing: [] };
  if (only !== "amd") {
    if (!tools.nvidiaSmi) out.missing.push("nvidia-smi");
    else {
      const found = await readNvidia(tools.nvidiaSmi, timeoutMs, out);
      if (found) return { ...out, snapshot: found, vendor: "nvidia" };
    }
  }
  if (only !== "nvidia") {
    if (!tools.rocmSmi) out.missing.push("rocm-smi");
    else {
      const found = await readRocm(tools.rocmSmi, timeoutMs, out);
      if (found) return { ...out, snapshot: found, vendor: "amd" };
    }
  }
  return out;
}

/**
 * What to log when a look found no GPU (`why`, and the line with what follows from it): a warning
 * when a tool failed (or none is installed, since a GPU box without its tools is a
 * misconfiguration), plain information when a tool said "none".
 */
export function describeNoGpu(result: InventoryResult): { level: "warn" | "info"; why: string; message: string } {
  if (result.problems.length > 0) {
    const why = [...result.problems, ...result.notes].join("; ");
    return { level: "warn", why, message: `${why}: running CPU-only` };
  }
  if (result.notes.length > 0) {
    const why = result.notes.join("; ");
    return { level: "info", why, message: `${why}: running CPU-only` };
  }
  const why = `${result.missing.length > 1 ? "neither " : ""}${result.missing.join(" nor ")} is on PATH`;
  return { level: "warn", why, message: `no GPU found: ${why}: running CPU-only (--gpus none skips the look)` };
}
