import type { Task } from "../../gen/studio/v1/job_pb.js";
import type { ModelEngine, ModelFileRole, ModelSource } from "../../gen/studio/v1/model_pb.js";
import type { GpuPool } from "../gpus/gpu-pool.js";
import { engineEnv } from "./engine-env.js";

/** One downloaded file of a model source, as the engine sees it: its role and where it lies on disk. */
export interface EngineFile {
  role: ModelFileRole;
  filename: string;
  path: string;
}

/** What an engine is doing now; the session turns it into JobProgress. `rate` is steps per second. */
export interface EngineProgress {
  phase: "loading" | "running";
  step?: number;
  steps?: number;
  rate?: number;
  message?: string;
}

/** A piece of a text job's output as the engine produces it. */
export interface TextPiece {
  kind: "text" | "reasoning";
  content: string;
  /** Tokens produced so far, this piece's included. */
  tokens: number;
}

/** One output of a job, in the order the engine produced it. */
export interface EngineOutput {
  mimeType: string;
  data: Uint8Array;
}

/**
 * One job for one engine. The download manager has placed every file of the source
 * (workDir/models/<filename> links, lora files under loraDir) before the engine runs.
 */
export interface EngineRunRequest {
  jobId: string;
  /** The job's model name (the registry's), for messages: a cached file is named by its digest on disk. */
  model: string;
  task: Task;
  source: ModelSource;
  files: EngineFile[];
  loraDir?: string;
  workDir: string;
  /** Cancel: the engine kills its process group or aborts its HTTP request, then rejects with "cancelled". */
  signal: AbortSignal;
  /** Job timeout: the engine kills its process group and rejects with "timeout". */
  timeoutMs?: number;
  onProgress(p: EngineProgress): void;
  /**
   * Text engines call it with each piece of the answer or reasoning as it is produced (`tokens`:
   * the count so far), so that the studio can stream it; the outputs still hold the whole result.
   */
  onText?(piece: TextPiece): void;
  /**
   * Called at once when the engine starts a process group for this job (its pgid and program), so
   * the runtime can record it for crash recovery. Optional; engines without processes never call it.
   */
  onSpawn?(pgid: number, binary: string): void;
  /** The GPU the job's slot runs on: its processes are pinned to it. Unset: the job runs on the CPU. */
  gpu?: JobGpu;
  /**
   * Keep the engine off every GPU (the worker runs with --gpus none): its processes see no device,
   * and llama-server offloads no layers unless told to.
   */
  cpuOnly?: boolean;
}

/** The GPU one job runs on, and the books engines keep on it. */
export interface JobGpu {
  index: number;
  /** "GPU 0 (NVIDIA GeForce RTX 4090)", for messages. */
  label: string;
  /** The variables that pin a process to it (CUDA_VISIBLE_DEVICES=<uuid>, HIP_VISIBLE_DEVICES=<index>). */
  env: Record<string, string>;
  /** The GPU memory the job was placed with (the source's vramBytes or the studio's estimate); 0 when not known. */
  needBytes: number;
  /** How the need was worked out, for an out-of-memory message ("8.1 GiB, estimated from ..."). */
  needText: string;
  pool: Pick<GpuPool, "makeRoom" | "processStarted" | "processEnded" | "serving" | "addWarm" | "removeWarm" | "jobEnded">;
}

/** The variables that keep a process off every GPU (--gpus none). */
export const NO_GPU_ENV: Record<string, string> = { CUDA_VISIBLE_DEVICES: "", HIP_VISIBLE_DEVICES: "" };

/**
 * The environment of an engine process for a job: the engine's own (else the minimal engine
 * environment, without the worker's secrets), pinned to the job's GPU or kept off all.
 */
export function pinnedEnv(base: NodeJS.ProcessEnv | undefined, req: Pick<EngineRunRequest, "gpu" | "cpuOnly">): NodeJS.ProcessEnv | undefined {
  if (req.gpu) return { ...(base ?? engineEnv()), ...req.gpu.env };
  if (req.cpuOnly) return { ...(base ?? engineEnv()), ...NO_GPU_ENV };
  return base;
}

/** A program that turns a task into outputs; one per ModelEngine value. */
export interface Engine {
  readonly kind: ModelEngine;
  run(req: EngineRunRequest): Promise<EngineOutput[]>;
  /**
   * The files of a source as the engine already holds them (a warm server started by an earlier
   * job), or undefined: a job the engine can run warm skips the cache check, its work dir and the
   * links, most of what a warm text job costs before the engine is asked. Warm means on the job's
   * GPU (`gpu`, JobGpu.index; undefined: the CPU): a server on another GPU does not serve it. Optional.
   */
  warmFiles?(source: ModelSource, gpu?: number): EngineFile[] | undefined;
  /** Stops every process the engine started and waits until each is reaped. */
  close(): Promise<void>;
}

/** Minimal structured logger the engines accept (pino's shape). */
export interface EngineLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

