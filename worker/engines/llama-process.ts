import { EngineError } from "./engine-error.js";
import { freePort } from "./free-port.js";
import { nextLlamaState, type LlamaState } from "./llama-state.js";
import { LineTail, SpawnError, killGroup, spawnGroup, type ChildExit, type GroupChild } from "./process-group.js";
import type { EngineLogger } from "./types.js";

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
  gpuLayers?: number;
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
export class LlamaProcess {
  private current: LlamaState = "stopped";
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

  /** The argv the server is started with. */
  args(port: number): string[] {
    const args = ["-m", this.opts.modelPath, "--host", "127.0.0.1", "--port", String(port)];
    if (this.opts.ctxSize !== undefined) args.push("-c", String(this.opts.ctxSize));
    if (this.opts.gpuLayers !== undefined) args.push("-ngl", String(this.opts.gpuLayers));
    return args;
  }

  /** Marks a job as using the server, which holds off the idle stop. */
  acquire(): void {
    this.busy++;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** Ends a job's use; the last one out arms the idle stop. */
  release(): void {
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

  /** Starts the server if needed and resolves once it is ready. */
  async ensureReady(): Promise<void> {
    for (;;) {
      if (this.current === "ready") return;
      if (this.current === "starting") await this.starting;
      else if (this.current === "stopping") await this.stopping;
      else {
        this.starting = this.start();
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

  private async start(): Promise<void> {
    this.transition("starting");
    this.stopping = undefined;
    this.stderr = new LineTail(15);
    let group: GroupChild;
    try {
      this.port = await freePort();
      group = await spawnGroup(this.opts.binary, this.args(this.port), {
        env: this.opts.env,
        onSpawn: (pgid) => this.opts.onSpawn?.(pgid, this.opts.binary),
      });
    } catch (err) {
      this.transition("stopped");
      if (err instanceof SpawnError) throw new EngineError("unavailable", err.message, { cause: err });
      throw err;
    }
    this.group = group;
    group.child.stderr!.setEncoding("utf8").on("data", (t: string) => this.stderr.push(t));
    group.child.stdout!.resume();
    void group.exited.then((exit) => {
      if (this.group === group) this.group = undefined;
      this.opts.onReaped?.(group.pid);
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
      throw new EngineError("failed", `llama-server ${how} while loading ${name}${this.tailNote()}`);
    }
    throw new EngineError("unavailable", `llama-server for ${name} was stopped while it started`);
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
