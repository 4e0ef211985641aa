/** Whose tool reported a GPU, and so which variable pins an engine to it. */
export type GpuVendorName = "nvidia" | "amd";

/** One GPU as its vendor's tool read it. */
export interface GpuReading {
  /** The tool's index (nvidia-smi's and rocm-smi's numbering), as --gpus names it. */
  index: number;
  /** nvidia-smi's "GPU-..." UUID, rocm-smi's unique id; "" when the tool reports none. */
  uuid: string;
  name: string;
  vendor: GpuVendorName;
  totalBytes: number;
  usedBytes: number;
}

/** A process using a GPU, as nvidia-smi's compute-apps query lists it. */
export interface GpuProcessReading {
  gpuUuid: string;
  pid: number;
  /** Undefined where the driver does not say ("[N/A]"). */
  usedBytes?: number;
}

/** What one look at the machine's GPUs found. */
export interface GpuSnapshot {
  gpus: GpuReading[];
  /** The processes on the GPUs (NVIDIA); undefined where the tool cannot list them (rocm-smi). */
  processes?: GpuProcessReading[];
}

/** The tool printed something this worker cannot read: the inventory is not trusted. */
export class GpuOutputError extends Error {
  readonly code = "gpu_output_unreadable";
  constructor(message: string) {
    super(message);
    this.name = "GpuOutputError";
  }
}

export const MiB = 1024 * 1024;
