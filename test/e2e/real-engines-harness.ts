import { inflateSync } from "node:zlib";
import type { Client } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { JobPhase, TaskSchema, type Job, type Task } from "../../gen/studio/v1/job_pb.js";
import type { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import type { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import type { ModelServer } from "../helpers/model-server.js";
import type { RealEngines, RealModelName } from "../helpers/real-engines.js";
import { watchJob, type WorkerProcess } from "./worker-harness.js";

/**
 * The sd-cpp source of the tiny Z-Image set (optionally with another diffusion model file, and
 * LoRA files: each served file under the file name given, with an optional lora_weight).
 */
export function zimageSource(
  engines: RealEngines,
  files: ModelServer,
  dit: RealModelName = "tiny-zimage-dit.gguf",
  loras: Array<{ model: RealModelName; filename: string; loraWeight?: number }> = [],
) {
  return {
    engine: ModelEngine.SD_CPP,
    files: [
      files.file(ModelFileRole.DIFFUSION_MODEL, engines.model(dit)),
      files.file(ModelFileRole.TEXT_ENCODER, engines.model("tiny-zimage-qwen3.gguf")),
      files.file(ModelFileRole.VAE, engines.model("tiny-zimage-vae.safetensors")),
      ...loras.map((l) => ({ ...files.file(ModelFileRole.LORA, engines.model(l.model), l.filename), loraWeight: l.loraWeight })),
    ],
    cliDefaults: { cfgScale: 1, steps: 2, width: 64, height: 64, samplingMethod: "euler" },
  };
}

/** The llama-cpp source of one tiny LLM file. */
export function llamaSource(engines: RealEngines, files: ModelServer, model: RealModelName) {
  return { engine: ModelEngine.LLAMA_CPP, files: [files.file(ModelFileRole.MODEL, engines.model(model))] };
}

/** Registers each model (name to source) with the studio. */
export async function registerModels(registry: Client<typeof RegistryService>, models: Record<string, ReturnType<typeof zimageSource> | ReturnType<typeof llamaSource>>) {
  for (const [name, source] of Object.entries(models)) await registry.createModel({ name, source });
}

export const imageTask = (prompt: string, fields: { seed?: bigint; batchCount?: number; steps?: number; negativePrompt?: string; width?: number; height?: number } = {}): Task =>
  create(TaskSchema, {
    kind: {
      case: "image",
      value: {
        prompt,
        negativePrompt: fields.negativePrompt ?? "",
        seed: fields.seed ?? 42n,
        batchCount: fields.batchCount ?? 1,
        overrides: { steps: fields.steps, width: fields.width, height: fields.height },
      },
    },
  });

export const textTask = (fields: { prompt?: string; messages?: Array<{ role: string; content: string }>; maxTokens?: number; seed?: bigint; thinking?: boolean }): Task =>
  create(TaskSchema, {
    kind: { case: "text", value: { prompt: fields.prompt ?? "", messages: fields.messages ?? [], maxTokens: fields.maxTokens, seed: fields.seed, thinking: fields.thinking } },
  });

/** Follows a job to its end, collecting the phases it passed through (in order, without repeats) and the steps. */
export async function followJob(jobs: Client<typeof JobService>, jobId: string, until?: (j: Job) => boolean) {
  const phases: JobPhase[] = [];
  const progress: Array<{ phase: JobPhase; step: number; steps: number; message: string }> = [];
  const job = await watchJob(jobs, jobId, {
    ...(until ? { until } : {}),
    seen: (j) => {
      const p = j.progress;
      if (!p || p.phase === JobPhase.UNSPECIFIED) return;
      if (phases.at(-1) !== p.phase) phases.push(p.phase);
      progress.push({ phase: p.phase, step: p.step, steps: p.steps, message: p.message });
    },
  });
  return { job, phases, progress };
}

/** The pid (and process group) of the engine process a worker logged for a job or model. */
export async function loggedEnginePid(worker: WorkerProcess, msg: "sd-cli started" | "llama-server started", match: (l: Record<string, unknown>) => boolean = () => true) {
  const line = await worker.waitForLine((l) => l.msg === msg && match(l));
  return { pid: Number(line.pid), port: line.port === undefined ? undefined : Number(line.port) };
}

/** True while any process of the group is alive. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits (polling: the kernel has no event for it) until a process group is gone; false after limitMs. */
export async function groupGone(pgid: number, limitMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + limitMs;
  while (groupAlive(pgid)) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(20);
  }
  return true;
}

/** PNG width and height from the IHDR chunk. */
export function pngSize(data: Uint8Array): { width: number; height: number } {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** A PNG's decoded pixel rows (the IDAT data inflated): compares images apart from their metadata chunks. */
export function pngPixels(data: Uint8Array): Buffer {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const idat: Uint8Array[] = [];
  for (let at = 8; at + 8 <= data.byteLength; ) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...data.subarray(at + 4, at + 8));
    if (type === "IDAT") idat.push(data.subarray(at + 8, at + 8 + length));
    at += 12 + length;
  }
  return inflateSync(Buffer.concat(idat));
}
