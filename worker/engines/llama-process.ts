import { EngineError, outOfMemoryLine } from "./engine-error.js";
import { NoRoomError, type WarmProcess } from "../gpus/gpu-pool.js";
import { freePort } from "./free-port.js";
import { nextLlamaState, type LlamaState } from "./llama-state.js";
import { LineTail, SpawnError, killGroup, spawnGroup, type ChildExit, type GroupChild } from "./process-group.js";
import { pinnedEnv, type EngineLogger, type JobGpu } from "./types.js";

/** How one llama-server is started and watched. */
export interface LlamaProcessOptions {
  binary: string;
  /** The model file's real path (the cached blob, named by its digest). */
  modelPath: string;
  /** How messages name the model: the registry's model and the file's name, never the digest path. */
  label: string;
  /** The file's name in its model source; replaces the blob path in the stderr lines messages quote. */
  filename: string;
  ctxSize?: number;
  /** -ngl; unset: all layers on a GPU, none with cpuOnly, else llama-server's own default. */
  gpuLayers?: number;
  /** The GPU the server runs on (every job it serves runs on that GPU); unset: the CPU. */
  gpu?: Omit<JobGpu, "needBytes" | "needText">;
  /** What placement charges the server on its GPU: the need of the jobs of its model. */
  chargeBytes?: number;
  /** How that charge was worked out, for an out-of-memory message. */
  chargeText?: string;
  /** Keep the server off every GPU (--gpus none). */
  cpuOnly?: boolean;
  /** How long start-up may take until GET /health answers 200. */
  healthTimeoutMs: number;
  /** How long SIGTERM gets before SIGKILL. */
  stopGraceMs: number;
  /** Stop after this long without a job. */
  idleMs: number;
  healthIntervalMs?: number;
  env?: NodeJS.ProcessEnv;
  logger?: EngineLogger;
  /** Called when a server's process group starts (for crash recovery records). */
  onSpawn?: (pgid: number, binary: string) => void;
  /** Called when that server's leader has exited and been reaped. */
  onReaped?: (pgid: number) => void;
}

/**
 * One warm llama-server for one model file. All state changes go through `transition`, checked
 * against LLAMA_TRANSITIONS; the process's exit event is its liveness check, so a server that dies
 * between or during jobs is `stopped` and the next job starts a new one.
 */
export class LlamaProcess implements WarmProcess {
  private current: LlamaState = "stopped";
  private usedAt = performance.now();
  private stderrPartial = "";
  /** The first stderr line of the running process saying an allocation failed. */
  private outOfMemory: string | undefined;
  private group?: GroupChild;
  private port = 0;
  private starting?: Promise<void>;
  private stopping?: Promise<void>;
  private busy = 0;
  private idleTimer?: ReturnType<typeof setTimeout>;
  private stderr = new LineTail(15);
  private readonly exitListeners = new Set<() => void>();

  constructor(private readonly opts: LlamaProcessOptions) {}

  get state(): LlamaState {
    return this.current;
  }

  /** The pid (and process group id) of the running server, if any. */
  get pid(): number | undefined {
    return this.group?.pid;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The GPU index it runs on (-1: the CPU). */
  get gpu(): number {
    return this.opts.gpu?.index ?? -1;
  }

  get chargeBytes(): number {
    return this.opts.chargeBytes ?? 0;
  }

  get label(): string {
    return `llama-server for ${this.opts.label}`;
  }

  /** Serving no job, and up: the pool may stop it to make room. */
  idle(): boolean {
    return this.busy === 0 && this.current === "ready";
  }

  lastUsedAt(): number {
    return this.usedAt;
  }

  /** The argv the server is started with: on a GPU every layer goes there unless --llama-gpu-layers says otherwise. */
  args(port: number): string[] {
    const args = ["-m", this.opts.modelPath, "--host", "127.0.0.1", "--port", String(port)];
    if (this.opts.ctxSize !== undefined) args.push("-c", String(this.opts.ctxSize));
    const layers = this.opts.gpuLayers ?? (this.opts.gpu ? "all" : this.opts.cpuOnly ? 0 : undefined);
    if (layers !== undefined) args.push("-ngl", String(layers));
    return args;
  }

  /** Marks a job as using the server, which holds off the idle stop. */
  acquire(): void {
    this.usedAt = performance.now();
    this.busy++;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** Ends a job's use; the last one out arms the idle stop. */
  release(): void {
    this.usedAt = performance.now();
    this.busy = Math.max(0, this.busy - 1);
    if (this.busy > 0 || this.current === "stopped") return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.busy === 0) {
        this.opts.logger?.info({ model: this.opts.modelPath, idleMs: this.opts.idleMs }, "llama-server idle; stopping");
        void this.stop();
      }
    }, this.opts.idleMs);
  }

  /**
   * Starts the server if needed and resolves once it is ready. A start first makes room for it on
   * its GPU (`jobId` is the job that asks: its own need is not counted twice); when there is none,
   * nothing starts and the call rejects with EngineError "no-room".
   */
  async ensureReady(jobId?: string): Promise<void> {
    for (;;) {
      if (this.current === "ready") return;
      if (this.current === "starting") await this.starting;
      else if (this.current === "stopping") await this.stopping;
      else {
        this.starting = this.start(jobId);
        await this.starting;
      }
    }
  }

  /** Resolves with the exit of the process running now (never resolves when none runs). */
  exitOfCurrent(): Promise<ChildExit> {
    return this.group ? this.group.exited : new Promise(() => {});
  }

  /**
   * Calls `listener` once when the process running now exits (at once when none runs).
   * Returns the unsubscribe function, so that a warm server does not collect one listener per job.
   */
  onExit(listener: () => void): () => void {
    if (!this.group) {
      listener();
      return () => {};
    }
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  /** The last stderr lines, for error messages, with the blob path replaced by the file's name. */
  stderrTail(): string {
    return this.stderr.text().replaceAll(this.opts.modelPath, this.opts.filename);
  }

  /** SIGTERM to the group, SIGKILL after the grace period; resolves once the process is reaped. */
  async stop(): Promise<void> {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.current === "stopped") return;
    if (this.current === "stopping") return this.stopping;
    if (!this.group) {
      // Still between "starting" and the spawn: let the start settle, then stop what it started.
      await this.starting?.catch(() => {});
      return this.stop();
    }
    const group = this.group;
    this.transition("stopping");
    this.stopping = killGroup(group, this.opts.stopGraceMs).then(() => {});
    await this.stopping;
  }

  private transition(to: LlamaState): void {
    const from = this.current;
    this.current = nextLlamaState(from, to);
    this.opts.logger?.debug?.({ model: this.opts.modelPath, from, to, pid: this.group?.pid }, "llama-server state");
  }

  private async start(jobId?: string): Promise<void> {
    this.transition("starting");
    this.stopping = undefined;
    this.stderr = new LineTail(15);
    this.stderrPartial = "";
    this.outOfMemory = undefined;
    const gpu = this.opts.gpu;
    let group: GroupChild;
    try {
      if (gpu && this.chargeBytes > 0) await gpu.pool.makeRoom(gpu.index, this.chargeBytes, jobId ?? "", this);
      this.port = await freePort();
      group = await spawnGroup(this.opts.binary, this.args(this.port), {
        env: pinnedEnv(this.opts.env, { gpu: gpu && { ...gpu, needBytes: this.chargeBytes, needText: "" }, cpuOnly: this.opts.cpuOnly }),
        onSpawn: (pgid) => {
          this.opts.onSpawn?.(pgid, this.opts.binary);
          if (gpu) {
            gpu.pool.processStarted(pgid, gpu.index, this.chargeBytes);
            gpu.pool.addWarm(this);
          }
        },
      });
    } catch (err) {
      this.transition("stopped");
      if (err instanceof SpawnError) throw new EngineError("unavailable", err.message, { cause: err });
      if (err instanceof NoRoomError) throw new EngineError("no-room", `${err.message}; llama-server for ${this.opts.label} was not started`);
      throw err;
    }
    this.group = group;
    group.child.stderr!.setEncoding("utf8").on("data", (t: string) => {
      this.stderr.push(t);
      const lines = (this.stderrPartial + t).split(/\r?\n/);
      this.stderrPartial = (lines.pop() ?? "").slice(-4096);
      if (this.outOfMemory === undefined) for (const line of lines) this.outOfMemory ??= outOfMemoryLine(line);
    });
    group.child.stdout!.resume();
    void group.exited.then((exit) => {
      if (this.group === group) this.group = undefined;
      this.opts.onReaped?.(group.pid);
      if (gpu) {
        gpu.pool.removeWarm(this);
        gpu.pool.processEnded(group.pid);
      }
      if (this.current !== "stopped") this.transition("stopped");
      const listeners = [...this.exitListeners];
      this.exitListeners.clear();
      for (const listener of listeners) listener();
      this.opts.logger?.info({ model: this.opts.modelPath, pid: group.pid, ...exit }, "llama-server exited");
    });
    this.opts.logger?.info({ model: this.opts.modelPath, label: this.opts.label, pid: group.pid, port: this.port }, "llama-server started");
    const name = this.opts.label;
    const deadline = Date.now() + this.opts.healthTimeoutMs;
    const interval = this.opts.healthIntervalMs ?? 50;
    while (this.current === "starting") {
      if (Date.now() > deadline) {
        await this.stop();
        throw new EngineError("failed", `llama-server did not become healthy within ${this.opts.healthTimeoutMs} ms for ${name}${this.tailNote()}`, { retryable: true });
      }
      if (await this.healthy()) {
        if (this.current === "starting") this.transition("ready");
        break;
      }
      await Promise.race([Bun.sleep(interval), group.exited]);
    }
    if (this.current === "ready") return;
    if (group.exit && this.current === "stopped" && !this.stopping) {
      await drained(group);
      const how = group.exit.signal ? `was killed by ${group.exit.signal}` : `exited with status ${group.exit.code}`;
      const oom = this.outOfMemoryError(`while loading ${name}`);
      if (oom) throw oom;
      throw new EngineError("failed", `llama-server ${how} while loading ${name}${this.tailNote()}`);
    }
    throw new EngineError("unavailable", `llama-server for ${name} was stopped while it started`);
  }

  /**
   * The error for a server that ran out of memory (its stderr said an allocation failed), naming the
   * GPU and what the model was counted as needing; undefined when it said no such thing.
   */
  outOfMemoryError(when: string): EngineError | undefined {
    const line = this.outOfMemory ?? outOfMemoryLine(this.stderrPartial);
    if (!line) return undefined;
    const where = this.opts.gpu ? ` on ${this.opts.gpu.label}` : "";
    const counted = this.opts.gpu && this.chargeBytes > 0 ? `; the model was counted as needing ${this.opts.chargeText}: state a larger vramBytes on it` : "";
    return new EngineError("out-of-memory", `llama-server ran out of memory${where} ${when} (${line.replaceAll(this.opts.modelPath, this.opts.filename)})${counted}${this.tailNote()}`);
  }

  private tailNote(): string {
    const tail = this.stderrTail();
    return tail === "" ? "" : `; last stderr lines:\n${tail}`;
  }

  private async healthy(): Promise<boolean> {
    try {
      const res = await fetch(`${this.baseUrl}/health`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer().catch(() => undefined);
      return res.status === 200;
    } catch {
      return false;
    }
  }
}

function drained(group: GroupChild): Promise<void> {
  return new Promise((resolve) => {
    if (group.child.stderr!.readableEnded) return resolve();
    group.child.once("close", () => resolve());
    setTimeout(resolve, 500);
  });
}
