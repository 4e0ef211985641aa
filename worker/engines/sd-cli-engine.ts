import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { expectedOutputCount } from "../../contract/index.js";
import { roleName } from "../../contract/names.js";
import { ModelEngine, ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import { EngineError, outOfMemoryLine } from "./engine-error.js";
import { NoRoomError } from "../gpus/gpu-pool.js";
import { pngProblem } from "./png.js";
import { LineTail, SpawnError, killGroup, spawnGroup, type ChildExit, type GroupChild } from "./process-group.js";
import { LoraTagError, sdCliArgs, sdOutputPaths } from "./sd-cli-args.js";
import { SdOutputSplitter, parseSdSegment } from "./sd-cli-output.js";
import { pinnedEnv, type Engine, type EngineLogger, type EngineOutput, type EngineProgress, type EngineRunRequest } from "./types.js";

/** Options of the sd-cli engine; `killGraceMs` is how long SIGTERM gets before SIGKILL. */
export interface SdCliEngineOptions {
  binary: string;
  extraArgs?: string[];
  logger?: EngineLogger;
  killGraceMs?: number;
  /** The child's environment (default: engineEnv(), without the worker's tokens). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs stable-diffusion.cpp's `sd-cli` once per image job: directly (no shell), in the job's work
 * dir, in its own process group so that a timeout or cancel kills everything it started.
 */
export class SdCliEngine implements Engine {
  readonly kind = ModelEngine.SD_CPP;
  private readonly running = new Set<GroupChild>();
  private readonly binary: string;
  private readonly extraArgs: string[];
  private readonly logger?: EngineLogger;
  private readonly killGraceMs: number;
  private readonly env?: NodeJS.ProcessEnv;
  private closed = false;

  constructor({ binary, extraArgs = [], logger, killGraceMs = 3000, env }: SdCliEngineOptions) {
    this.env = env;
    this.binary = binary;
    this.extraArgs = extraArgs;
    this.logger = logger;
    this.killGraceMs = killGraceMs;
  }

  async run(req: EngineRunRequest): Promise<EngineOutput[]> {
    if (this.closed) throw new EngineError("unavailable", "the sd-cli engine is closed");
    if (req.source.engine !== ModelEngine.SD_CPP)
      throw new EngineError("unavailable", `the sd-cli engine only runs sd-cpp sources (got engine ${ModelEngine[req.source.engine]})`);
    if (req.task.kind.case !== "image") throw new EngineError("failed", "sd-cli runs image tasks; this job is not one");
    if (req.signal.aborted) throw new EngineError("cancelled", "the job was cancelled before sd-cli started");
    const task = req.task.kind.value;
    let args: string[];
    try {
      args = sdCliArgs({ task, source: req.source, files: req.files, loraDir: req.loraDir, workDir: req.workDir, extraArgs: this.extraArgs });
    } catch (err) {
      if (err instanceof LoraTagError) throw new EngineError("failed", `${err.message} (model ${JSON.stringify(req.model)})`);
      throw new EngineError("failed", (err as Error).message);
    }
    const exit = await this.execute(req, args);
    const outputs: EngineOutput[] = [];
    for (const path of sdOutputPaths(req.workDir, expectedOutputCount(req.task))) {
      let data: Uint8Array;
      try {
        data = new Uint8Array(await readFile(path));
      } catch {
        throw new EngineError("bad-output", `sd-cli exited with status ${exit.code} but wrote no ${basename(path)}`);
      }
      const problem = pngProblem(data);
      if (problem) throw new EngineError("bad-output", `sd-cli's ${basename(path)} is not a valid PNG: it ${problem}`);
      outputs.push({ mimeType: "image/png", data });
    }
    return outputs;
  }

  /** Kills every running sd-cli process group and waits until each is reaped. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.running].map((g) => killGroup(g, this.killGraceMs)));
  }

  private async execute(req: EngineRunRequest, args: string[]): Promise<ChildExit> {
    const gpu = req.gpu;
    if (gpu && gpu.needBytes > 0) {
      try {
        await gpu.pool.makeRoom(gpu.index, gpu.needBytes, req.jobId);
      } catch (err) {
        if (err instanceof NoRoomError) throw new EngineError("no-room", err.message);
        throw err;
      }
      if (req.signal.aborted) throw new EngineError("cancelled", "the job was cancelled before sd-cli started");
    }
    let group: GroupChild;
    try {
      group = await spawnGroup(this.binary, args, {
        cwd: req.workDir,
        env: pinnedEnv(this.env, req),
        onSpawn: (pgid) => {
          req.onSpawn?.(pgid, this.binary);
          if (gpu) gpu.pool.processStarted(pgid, gpu.index, gpu.needBytes, req.jobId);
        },
      });
    } catch (err) {
      if (err instanceof SpawnError) throw new EngineError("unavailable", err.message, { cause: err });
      throw err;
    }
    this.running.add(group);
    this.logger?.info({ jobId: req.jobId, pid: group.pid, binary: this.binary, gpu: gpu?.index }, "sd-cli started");
    const tail = new LineTail(12);
    let stopReason: "timeout" | "cancelled" | "lora" | undefined;
    const stop = (reason: "timeout" | "cancelled" | "lora") => {
      if (stopReason || group.exit) return;
      stopReason = reason;
      void killGroup(group, this.killGraceMs);
    };
    const run = new SdRun(req, tail, () => stop("lora"));
    const out = new SdOutputSplitter((segment) => run.segment(segment, "stdout"));
    const err = new SdOutputSplitter((segment) => run.segment(segment, "stderr"));
    group.child.stdout!.setEncoding("utf8").on("data", (text: string) => out.push(text));
    group.child.stderr!.setEncoding("utf8").on("data", (text: string) => err.push(text));
    const onAbort = () => stop("cancelled");
    req.signal.addEventListener("abort", onAbort, { once: true });
    if (req.signal.aborted) onAbort();
    const timer = req.timeoutMs === undefined ? undefined : setTimeout(() => stop("timeout"), req.timeoutMs);
    const startedAt = performance.now();
    try {
      const exit = await group.exited;
      this.logger?.info({ jobId: req.jobId, pid: group.pid, ...exit, ms: Math.round(performance.now() - startedAt) }, "sd-cli exited");
      await closed(group);
      out.end();
      err.end();
      await killGroup(group, 0);
      if (stopReason === "cancelled") throw new EngineError("cancelled", "the job was cancelled; sd-cli was stopped");
      if (stopReason === "timeout")
        throw new EngineError("timeout", `sd-cli ran past the job timeout of ${req.timeoutMs} ms and was killed`);
      // sd-cli logs a LoRA it cannot load and goes on without it (exit 0): that is no image of this model.
      if (run.loraFailure) throw new EngineError("failed", `${run.loraFailure}; sd-cli was stopped`);
      const last = tail.text();
      const lines = last === "" ? "" : `; last output:\n${last}`;
      if ((exit.signal || exit.code !== 0) && run.outOfMemory) {
        const where = gpu ? ` on ${gpu.label}` : "";
        const how = exit.signal ? `was killed by ${exit.signal}` : `exited with status ${exit.code}`;
        const counted = gpu && gpu.needBytes > 0 ? `; the model was counted as needing ${gpu.needText}: state a larger vramBytes on it` : "";
        throw new EngineError("out-of-memory", `sd-cli ran out of memory${where}: sd-cli ${how} after "${run.outOfMemory}"${counted}${lines}`);
      }
      if (exit.signal) throw new EngineError("crashed", `sd-cli was killed by ${exit.signal}${lines}`);
      if (exit.code !== 0) {
        const load = run.loadFailure();
        throw new EngineError("failed", `${load ? `${load}: ` : ""}sd-cli exited with status ${exit.code}${lines}`);
      }
      return exit;
    } finally {
      clearTimeout(timer);
      req.signal.removeEventListener("abort", onAbort);
      this.running.delete(group);
      if (gpu) gpu.pool.processEnded(group.pid);
    }
  }
}

/**
 * What one sd-cli run is doing, read from its output. sd-cli loads weights lazily: it logs
 * "generating image" and then loads the text encoder and diffusion model (a `###` bar in MB/s),
 * samples (the `===>` bar in it/s or s/it), then loads the VAE and decodes. So the phase follows
 * the bars: loading while a load bar runs or before the first sampling step, running from the first
 * sampling step and while decoding. ERROR lines (stderr) and LoRA warnings (stdout) are kept to
 * name a file that failed to load.
 */
class SdRun {
  private phase: EngineProgress["phase"] = "loading";
  private image = "";
  private readonly errors: string[] = [];
  /** Set when sd-cli reports a LoRA it could not load; the run is stopped at once. */
  loraFailure: string | undefined;
  /** The first line saying an allocation failed (GPU or host memory), if any. */
  outOfMemory: string | undefined;

  constructor(
    private readonly req: EngineRunRequest,
    private readonly tail: LineTail,
    private readonly onLoraFailure: () => void,
  ) {}

  /** One segment of sd-cli's output; stderr carries only ERROR lines (its tags may be lost to interleaving). */
  segment(segment: string, stream: "stdout" | "stderr"): void {
    this.outOfMemory ??= outOfMemoryLine(segment);
    const parsed = parseSdSegment(segment);
    if (!parsed) return;
    const { onProgress } = this.req;
    if ("bar" in parsed) {
      this.phase = "running";
      const { step, steps, rate } = parsed.bar;
      onProgress({ phase: "running", step, steps, rate, message: `${this.image}step ${step}/${steps}` });
      return;
    }
    if ("load" in parsed) {
      this.phase = "loading";
      onProgress({ phase: "loading", message: `${this.image}loading weights ${parsed.load.done}/${parsed.load.total}` });
      return;
    }
    const line = "log" in parsed ? `[${parsed.log.level}] ${parsed.log.location} - ${parsed.log.message}` : parsed.text;
    this.tail.push(`${line}\n`);
    if (stream === "stderr") {
      const message = "log" in parsed ? parsed.log.message : parsed.text;
      this.errors.push(message);
      this.checkLora("ERROR", message);
      if (!("log" in parsed)) return;
    }
    if (!("log" in parsed) || parsed.log.level === "DEBUG") return;
    const { level, message } = parsed.log;
    if (stream === "stdout") this.checkLora(level, message);
    const image = /generating image: (\d+)\/(\d+)/.exec(message);
    if (image) this.image = `image ${image[1]}/${image[2]}: `;
    if (/^decoding \d+ latents/.test(message)) this.phase = "running";
    onProgress({ phase: this.phase, message });
  }

  /** The first file of the source an ERROR line names, as "sd-cli could not load the <role> file <name> of model "<m>" (<error>)". */
  loadFailure(): string | undefined {
    for (const error of this.errors) {
      const file = this.req.files.find((f) => error.includes(f.path));
      if (file) {
        const what = error.replace(`'${file.path}'`, "").replace(file.path, "").replace(/[:\s]+$/, "");
        return `sd-cli could not load the ${roleName(file.role) ?? "model"} file ${file.filename} of model ${JSON.stringify(this.req.model)} (${what})`;
      }
    }
    return undefined;
  }

  private checkLora(level: string, message: string): void {
    if (this.loraFailure || level === "INFO" || level === "DEBUG") return;
    const failed =
      /^load lora tensors from (.+) failed$/.exec(message) ??
      /^init lora model loader from file failed: '(.+)'$/.exec(message) ??
      /^can not found lora (.+)$/.exec(message);
    if (!failed) return;
    const path = failed[1]!;
    const file = this.req.files.find((f) => f.role === ModelFileRole.LORA && (path === f.path || path.endsWith(`/${f.filename}`)));
    const name = file ? `the LoRA file ${file.filename}` : `a LoRA (${path})`;
    this.loraFailure = `sd-cli could not load ${name} of model ${JSON.stringify(this.req.model)}: ${message}`;
    this.onLoraFailure();
  }
}

/** Waits until both pipes are drained, so that the last lines are in the tail. */
function closed(group: GroupChild): Promise<void> {
  return new Promise((resolve) => {
    if (group.child.stdout!.readableEnded && group.child.stderr!.readableEnded) return resolve();
    group.child.once("close", () => resolve());
    setTimeout(resolve, 1000).unref?.();
  });
}
