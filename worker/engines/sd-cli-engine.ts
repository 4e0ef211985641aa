import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { expectedOutputCount } from "../../contract/index.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { EngineError } from "./engine-error.js";
import { pngProblem } from "./png.js";
import { LineTail, SpawnError, killGroup, spawnGroup, type ChildExit, type GroupChild } from "./process-group.js";
import { sdCliArgs, sdOutputPaths } from "./sd-cli-args.js";
import { SdOutputSplitter, parseSdSegment } from "./sd-cli-output.js";
import type { Engine, EngineLogger, EngineOutput, EngineProgress, EngineRunRequest } from "./types.js";

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
    let group: GroupChild;
    try {
      group = await spawnGroup(this.binary, args, { cwd: req.workDir, env: this.env, onSpawn: (pgid) => req.onSpawn?.(pgid, this.binary) });
    } catch (err) {
      if (err instanceof SpawnError) throw new EngineError("unavailable", err.message, { cause: err });
      throw err;
    }
    this.running.add(group);
    this.logger?.info({ jobId: req.jobId, pid: group.pid, binary: this.binary }, "sd-cli started");
    const tail = new LineTail(12);
    const state = { sampling: false, image: "" };
    const splitter = new SdOutputSplitter((segment) => this.onSegment(segment, tail, req.onProgress, state));
    group.child.stdout!.setEncoding("utf8").on("data", (text: string) => splitter.push(text));
    group.child.stderr!.setEncoding("utf8").on("data", (text: string) => tail.push(text));
    let stopReason: "timeout" | "cancelled" | undefined;
    const stop = (reason: "timeout" | "cancelled") => {
      if (stopReason || group.exit) return;
      stopReason = reason;
      void killGroup(group, this.killGraceMs);
    };
    const onAbort = () => stop("cancelled");
    req.signal.addEventListener("abort", onAbort, { once: true });
    if (req.signal.aborted) onAbort();
    const timer = req.timeoutMs === undefined ? undefined : setTimeout(() => stop("timeout"), req.timeoutMs);
    try {
      const exit = await group.exited;
      await closed(group);
      splitter.end();
      await killGroup(group, 0);
      if (stopReason === "cancelled") throw new EngineError("cancelled", "the job was cancelled; sd-cli was stopped");
      if (stopReason === "timeout")
        throw new EngineError("timeout", `sd-cli ran past the job timeout of ${req.timeoutMs} ms and was killed`);
      const last = tail.text();
      const lines = last === "" ? "" : `; last output:\n${last}`;
      if (exit.signal) throw new EngineError("crashed", `sd-cli was killed by ${exit.signal}${lines}`);
      if (exit.code !== 0) throw new EngineError("failed", `sd-cli exited with status ${exit.code}${lines}`);
      return exit;
    } finally {
      clearTimeout(timer);
      req.signal.removeEventListener("abort", onAbort);
      this.running.delete(group);
    }
  }

  private onSegment(segment: string, tail: LineTail, onProgress: (p: EngineProgress) => void, state: { sampling: boolean; image: string }): void {
    const parsed = parseSdSegment(segment);
    if (!parsed) return;
    if ("bar" in parsed) {
      state.sampling = true;
      const { step, steps, rate } = parsed.bar;
      onProgress({ phase: "running", step, steps, rate, message: `${state.image}step ${step}/${steps}` });
      return;
    }
    const line = "log" in parsed ? `[${parsed.log.level}] ${parsed.log.location} - ${parsed.log.message}` : parsed.text;
    tail.push(`${line}\n`);
    if (!("log" in parsed) || parsed.log.level === "DEBUG") return;
    const image = /generating image: (\d+)\/(\d+)/.exec(parsed.log.message);
    if (image) {
      state.sampling = true;
      state.image = `image ${image[1]}/${image[2]}: `;
    }
    onProgress({ phase: state.sampling ? "running" : "loading", message: parsed.log.message });
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
