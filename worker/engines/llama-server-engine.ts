import { realpathSync } from "node:fs";
import { realpath } from "node:fs/promises";
import { ModelEngine, ModelFileRole, type ModelFile, type ModelSource } from "../../gen/studio/v1/model_pb.js";
import { EngineError } from "./engine-error.js";
import { streamText } from "./llama-client.js";
import { LlamaProcess } from "./llama-process.js";
import { textOutput } from "./text-output.js";
import type { Engine, EngineFile, EngineLogger, EngineOutput, EngineRunRequest } from "./types.js";

/** Options of the llama-server engine (durations in milliseconds). */
export interface LlamaServerEngineOptions {
  binary: string;
  /** Stop a server after this long without a job. */
  idleMs: number;
  ctxSize?: number;
  gpuLayers?: number;
  /** How long start-up may take until /health answers 200 (default 120 s: big models load slowly). */
  healthTimeoutMs?: number;
  /** How long SIGTERM gets before SIGKILL (default 5 s). */
  stopGraceMs?: number;
  healthIntervalMs?: number;
  /** The children's environment (default: engineEnv(), without the worker's tokens). */
  env?: NodeJS.ProcessEnv;
  logger?: EngineLogger;
  /** Called when a warm server's process group starts, so the worker can record it for crash recovery. */
  onSpawn?: (pgid: number, binary: string) => void;
  /** Called when a warm server's leader has exited and been reaped. */
  onReaped?: (pgid: number) => void;
}

/**
 * Runs text tasks on llama.cpp's `llama-server`, one warm server per model file, reused by later
 * jobs for the same model. The server is keyed by, and started with, the model file's real path
 * (the cached blob behind the job's work-dir link): each job has its own work dir, so the link
 * differs from job to job and vanishes with it, while the blob stays. Messages go to /v1/chat/completions, a prompt to /completion, both
 * streamed; progress is the number of tokens so far.
 *
 * The job's one output has mime `application/json`, shaped as contract/text-output.ts says:
 * `{"text": "...", "reasoning": "...", "finishReason": "...", "usage": {"promptTokens": n, "completionTokens": n}}`.
 */
export class LlamaServerEngine implements Engine {
  readonly kind = ModelEngine.LLAMA_CPP;
  private readonly servers = new Map<string, LlamaProcess>();
  /** Each model file (by sha256, else URL) and GPU a server was started for: what warmFiles answers from. */
  private readonly byFile = new Map<string, { path: string; server: LlamaProcess }>();
  private closed = false;

  constructor(private readonly opts: LlamaServerEngineOptions) {}

  /** The server for a model file (on a GPU, or the CPU), if one was ever started (tests and status output read its state and pid). */
  server(modelPath: string, gpu?: number): LlamaProcess | undefined {
    try {
      return this.servers.get(serverKey(realpathSync(modelPath), gpu));
    } catch {
      return undefined;
    }
  }

  /** Every server ever started, with the GPU each runs on (-1: the CPU). */
  allServers(): LlamaProcess[] {
    return [...this.servers.values()];
  }

  /** The model file's path when a ready server for it runs where the job will (its GPU, or the CPU): the job needs no download then. */
  warmFiles(source: ModelSource, gpu?: number): EngineFile[] | undefined {
    if (this.closed || source.engine !== ModelEngine.LLAMA_CPP) return undefined;
    const models = source.files.filter((f) => f.role === ModelFileRole.MODEL);
    if (models.length !== 1) return undefined;
    const warm = this.byFile.get(serverKey(fileKey(models[0]!), gpu));
    if (!warm || warm.server.state !== "ready") return undefined;
    return [{ role: ModelFileRole.MODEL, filename: models[0]!.filename, path: warm.path }];
  }

  private isWarmPath(path: string): boolean {
    for (const warm of this.byFile.values()) if (warm.path === path) return true;
    return false;
  }

  async run(req: EngineRunRequest): Promise<EngineOutput[]> {
    if (this.closed) throw new EngineError("unavailable", "the llama-server engine is closed");
    if (req.source.engine !== ModelEngine.LLAMA_CPP)
      throw new EngineError("unavailable", `the llama-server engine only runs llama-cpp sources (got engine ${ModelEngine[req.source.engine]})`);
    if (req.task.kind.case !== "text") throw new EngineError("failed", "llama-server runs text tasks; this job is not one");
    const models = req.files.filter((f) => f.role === ModelFileRole.MODEL);
    if (models.length !== 1) throw new EngineError("failed", `llama-server needs exactly one model file (got ${models.length})`);
    if (req.signal.aborted) throw new EngineError("cancelled", "the job was cancelled before llama-server was asked");
    const model = models[0]!;
    let modelPath: string;
    try {
      // A warm file's path is the blob's real path already (warmFiles); realpath costs a few ms of CPU here.
      modelPath = this.isWarmPath(model.path) ? model.path : await realpath(model.path);
    } catch {
      throw new EngineError("failed", `the model file ${model.filename} is missing from the work dir (${model.path})`);
    }
    const label = `model "${req.model}" (file ${model.filename})`;
    const server = this.serverFor(modelPath, label, model.filename, req);
    const sourceFile = req.source.files.find((f) => f.role === ModelFileRole.MODEL);
    if (sourceFile) this.byFile.set(serverKey(fileKey(sourceFile), req.gpu?.index), { path: modelPath, server });
    const task = req.task.kind.value;
    const controller = new AbortController();
    let why: "cancelled" | "timeout" | "died" | undefined;
    const abort = (reason: "cancelled" | "timeout" | "died") => {
      why ??= reason;
      controller.abort();
    };
    const onAbort = () => abort("cancelled");
    req.signal.addEventListener("abort", onAbort, { once: true });
    if (req.signal.aborted) onAbort();
    const timer = req.timeoutMs === undefined ? undefined : setTimeout(() => abort("timeout"), req.timeoutMs);
    let unwatch = () => {};
    server.acquire();
    try {
      if (server.state !== "ready") req.onProgress({ phase: "loading", message: `starting llama-server for ${model.filename}` });
      await untilAborted(server.ensureReady(req.jobId), controller.signal);
      unwatch = server.onExit(() => abort("died"));
      if (req.gpu && server.pid !== undefined) {
        const pid = server.pid;
        req.gpu.pool.serving(req.jobId, pid, true);
        const stopServing = unwatch;
        unwatch = () => {
          stopServing();
          req.gpu!.pool.serving(req.jobId, pid, false);
        };
      }
      req.onProgress({ phase: "running", step: 0, message: "0 tokens" });
      const asked = performance.now();
      const result = await streamText(server.baseUrl, task, controller.signal, ({ kind, content, tokens, reasoningTokens }) => {
        req.onText?.({ kind, content, tokens });
        // Time to first token, per job, in the log: what the engine took once the request was made.
        if (tokens === 1) this.opts.logger?.info({ jobId: req.jobId, model: req.model, ms: Math.round((performance.now() - asked) * 10) / 10 }, "first token");
        req.onProgress({
          phase: "running",
          step: tokens,
          message: reasoningTokens === 0 ? `${tokens} tokens` : `${tokens} tokens (${reasoningTokens} reasoning)`,
        });
      });
      return [textOutput(result)];
    } catch (err) {
      throw await this.explain(err, why, server, req.timeoutMs, label);
    } finally {
      unwatch();
      clearTimeout(timer);
      req.signal.removeEventListener("abort", onAbort);
      server.release();
    }
  }

  /** Stops every server (SIGTERM, then SIGKILL after the grace period) and waits until each is reaped. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.servers.values()].map((s) => s.stop()));
  }

  /**
   * The server for a blob on the job's GPU (one per model file and GPU: a job runs on its slot's GPU);
   * `label` and `filename` name it in messages (the first job's model names a shared blob).
   */
  private serverFor(modelPath: string, label: string, filename: string, req: EngineRunRequest): LlamaProcess {
    const key = serverKey(modelPath, req.gpu?.index);
    let server = this.servers.get(key);
    if (!server) {
      const gpu = req.gpu;
      server = new LlamaProcess({
        binary: this.opts.binary,
        modelPath,
        label,
        filename,
        ctxSize: this.opts.ctxSize,
        gpuLayers: this.opts.gpuLayers,
        gpu: gpu && { index: gpu.index, label: gpu.label, env: gpu.env, pool: gpu.pool },
        chargeBytes: gpu?.needBytes,
        chargeText: gpu?.needText,
        cpuOnly: req.cpuOnly,
        healthTimeoutMs: this.opts.healthTimeoutMs ?? 120_000,
        stopGraceMs: this.opts.stopGraceMs ?? 5_000,
        idleMs: this.opts.idleMs,
        healthIntervalMs: this.opts.healthIntervalMs,
        env: this.opts.env,
        logger: this.opts.logger,
        onSpawn: this.opts.onSpawn,
        onReaped: this.opts.onReaped,
      });
      this.servers.set(key, server);
    }
    return server;
  }

  private async explain(err: unknown, why: string | undefined, server: LlamaProcess, timeoutMs: number | undefined, name: string): Promise<EngineError> {
    if (why === "timeout") {
      await server.stop();
      return new EngineError("timeout", `the job ran past its timeout of ${timeoutMs} ms; llama-server for ${name} was stopped`);
    }
    if (why === "cancelled") return new EngineError("cancelled", "the job was cancelled; its llama-server request was aborted");
    if (err instanceof EngineError) return err;
    if (why !== "died") await Promise.race([server.exitOfCurrent(), Bun.sleep(200)]);
    const oom = why === "died" || server.state === "stopped" ? server.outOfMemoryError("during the job") : undefined;
    if (oom) return oom;
    const tail = server.stderrTail();
    const note = tail === "" ? "" : `; last stderr lines:\n${tail}`;
    if (why === "died" || server.state === "stopped")
      return new EngineError("crashed", `llama-server for ${name} exited during the job${note}`);
    return new EngineError("crashed", `llama-server for ${name} failed the request: ${(err as Error).message}${note}`);
  }
}

function serverKey(modelPath: string, gpu: number | undefined): string {
  return gpu === undefined ? modelPath : `${modelPath}\0gpu${gpu}`;
}

/** Waits for `work` unless `signal` aborts first (the work goes on; another job may use it). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error("aborted"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error("aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** A model file's identity across jobs: its digest, else its URL (as the cache keys it). */
function fileKey(file: ModelFile): string {
  return file.sha256 ? `sha256:${file.sha256.toLowerCase()}` : `url:${file.url}`;
}
