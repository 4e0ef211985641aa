import type { GpuDevice } from "../../gen/studio/v1/worker_service_pb.js";
import { formatBytes } from "../../contract/byte-size.js";
import { ConfigError } from "../../contract/settings.js";
import type { WorkerConfig } from "../config.js";
import { GpuPool } from "./gpu-pool.js";
import { GpuPlanError, planSlots, type SlotPlan } from "./gpu-plan.js";
import { describeNoGpu, readInventory, type GpuTools } from "./inventory.js";

/** What start-up decided about GPUs: which slot runs where, and the pool that keeps the books (none without a GPU). */
export interface GpuSetup {
  plan: SlotPlan;
  pool?: GpuPool;
  /** --gpus none: engines are kept off every GPU. */
  cpuOnly: boolean;
}

interface SetupLogger {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

/**
 * Looks for the machine's GPUs (unless --gpus none) and plans the slots on them. A GPU tool that is
 * missing, hangs or prints something unreadable leaves the worker CPU-only with one warning; --gpus
 * or --slot-gpus naming a GPU that is not there stops start-up (ConfigError) listing the GPUs
 * found. `onUpdate` gets the GPUs' figures whenever they moved enough to tell the studio.
 */
export async function setUpGpus(
  config: Pick<WorkerConfig, "gpus" | "slots" | "slotGpus" | "nvidiaSmi" | "rocmSmi" | "gpuPollSeconds">,
  logger: SetupLogger,
  { isExecutable, onUpdate, toolTimeoutMs }: { isExecutable(path: string): boolean; onUpdate(devices: GpuDevice[]): void; toolTimeoutMs?: number },
): Promise<GpuSetup> {
  const plan = (found: Parameters<typeof planSlots>[1], why?: string) => {
    try {
      return planSlots(config.gpus, found, { slots: config.slots, slotGpus: config.slotGpus, why });
    } catch (err) {
      if (err instanceof GpuPlanError) throw new ConfigError(err.message);
      throw err;
    }
  };
  if (config.gpus.kind === "none") {
    logger.info({ slots: config.slots ?? 1 }, "--gpus none: running CPU-only; engines see no GPU");
    return { plan: plan([]), cpuOnly: true };
  }
  const tool = (flag: string, given: string | undefined, name: string) => {
    if (given === undefined) return Bun.which(name) ?? undefined;
    if (!isExecutable(given)) throw new ConfigError(`${flag}: ${given} is not an executable file`);
    return given;
  };
  const tools: GpuTools = {
    nvidiaSmi: tool("--nvidia-smi", config.nvidiaSmi, "nvidia-smi"),
    rocmSmi: tool("--rocm-smi", config.rocmSmi, "rocm-smi"),
  };
  const result = await readInventory(tools, { timeoutMs: toolTimeoutMs });
  const found = result.snapshot.gpus;
  const none = found.length === 0 ? describeNoGpu(result) : undefined;
  const slots = plan(found, none?.why);
  for (const note of slots.notes) logger.info({}, note);
  if (slots.gpus.length === 0 || !result.vendor) {
    if (none) logger[none.level]({}, none.message);
    return { plan: slots, cpuOnly: false };
  }
  logger.info(
    {
      gpus: slots.gpus.map(({ gpu, slots: n }) => ({
        index: gpu.index,
        name: gpu.name,
        uuid: gpu.uuid,
        memory: formatBytes(gpu.totalBytes),
        free: formatBytes(gpu.totalBytes - gpu.usedBytes),
        slots: n,
      })),
    },
    `running on ${slots.gpus.length} ${result.vendor === "nvidia" ? "NVIDIA" : "AMD"} GPU${slots.gpus.length === 1 ? "" : "s"}, ${slots.slotGpus.length} slot${slots.slotGpus.length === 1 ? "" : "s"}`,
  );
  const pool = new GpuPool({
    gpus: slots.gpus,
    vendor: result.vendor,
    tools,
    toolTimeoutMs,
    pollMs: config.gpuPollSeconds * 1000,
    logger,
    onUpdate,
  });
  return { plan: slots, pool, cpuOnly: false };
}
