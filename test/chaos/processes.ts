import { closeSync, existsSync, openSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { forEngines } from "../e2e/worker-harness.js";

export const REPO = resolve(import.meta.dir, "../..");

/**
 * A port that was free a moment ago: the studio keeps it across restarts so workers and clients
 * keep their URL. Picked below the ephemeral range, so the workers' and clients' own connections
 * cannot take it while a killed studio is down.
 */
export { freePort } from "../../worker/engines/free-port.js";

/**
 * Compiles the worker into `outfile` (a private copy, so that another suite rebuilding
 * dist/studio-worker at the same time cannot swap the binary under a running test).
 */
export function compileWorker(outfile: string): void {
  const r = Bun.spawnSync(["bun", "build", "--compile", "--bytecode", join(REPO, "worker/main.ts"), "--outfile", outfile], {
    cwd: REPO,
    stdout: "pipe",
    stderr: "pipe",
  });
  if (r.exitCode !== 0) throw new Error(`compiling the worker failed: ${r.stderr.toString()}`);
}

/** A child process whose stdout and stderr go to one log file (nothing to drain, nothing to block). */
export interface LoggedProcess {
  readonly proc: ReturnType<typeof Bun.spawn>;
  readonly pid: number;
  readonly logFile: string;
}

function spawnLogged(argv: string[], logFile: string, env: Record<string, string>): LoggedProcess {
  const fd = openSync(logFile, "a");
  try {
    const proc = Bun.spawn(argv, {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", STUDIO_ENGINE_ENV: forEngines(env), ...env },
      stdin: "ignore",
      stdout: fd,
      stderr: fd,
    });
    return { proc, pid: proc.pid, logFile };
  } finally {
    closeSync(fd);
  }
}

/** The studio as a real `bun server/main.ts` child on a fixed port and data dir. */
export class StudioProcess {
  current: LoggedProcess | undefined;
  starts = 0;

  constructor(
    readonly opts: {
      port: number;
      dataDir: string;
      logFile: string;
      leaseTtlMs: number;
      heartbeatIntervalMs: number;
      maxAttempts: number;
      /** A replica on this PostgreSQL database instead of SQLite in dataDir. */
      databaseUrl?: string;
    },
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.opts.port}`;
  }

  /** Waits until the running studio's /readyz answers 200 again (after its database came back). */
  async waitReady(deadlineMs = 30_000): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      try {
        if ((await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(3000) })).status === 200) return;
      } catch {
        // Not answering yet.
      }
      if (Date.now() > deadline) throw new Error(`the studio on ${this.url} was not ready again within ${deadlineMs} ms; see ${this.opts.logFile}`);
      await Bun.sleep(100);
    }
  }

  /** Starts the studio and waits until /readyz answers 200 (its migrations ran and it serves). */
  async start(deadlineMs = 30_000): Promise<void> {
    const o = this.opts;
    this.starts += 1;
    this.current = spawnLogged(
      [
        "bun", join(REPO, "server/main.ts"),
        "--host", "127.0.0.1",
        "--port", String(o.port),
        "--data-dir", o.dataDir,
        "--lease-ttl-ms", String(o.leaseTtlMs),
        "--heartbeat-interval-ms", String(o.heartbeatIntervalMs),
        "--default-max-attempts", String(o.maxAttempts),
        "--log-level", "warn",
      ],
      o.logFile,
      o.databaseUrl ? { STUDIO_DATABASE_URL: o.databaseUrl } : {},
    );
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      if (this.current.proc.exitCode !== null) throw new Error(`the studio exited with ${this.current.proc.exitCode}; see ${o.logFile}`);
      try {
        const res = await fetch(`${this.url}/readyz`);
        if (res.status === 200) return;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`the studio did not become ready in ${deadlineMs} ms; see ${o.logFile}`);
      await Bun.sleep(50);
    }
  }

  /** kill -9, and wait until the process is reaped. */
  async kill9(): Promise<void> {
    const p = this.current;
    if (!p) return;
    p.proc.kill("SIGKILL");
    await p.proc.exited;
    this.current = undefined;
  }

  /** SIGTERM (graceful stop), then SIGKILL if it takes longer than `graceMs`; resolves to the exit code. */
  async stop(graceMs = 10_000): Promise<number | null> {
    const p = this.current;
    if (!p) return null;
    p.proc.kill("SIGTERM");
    const timer = setTimeout(() => p.proc.kill("SIGKILL"), graceMs);
    const code = await p.proc.exited;
    clearTimeout(timer);
    this.current = undefined;
    return code;
  }
}

/** How a graceful stop (SIGTERM) ended: a clean one exits 0 by itself within its budget. */
export interface GracefulStop {
  name: string;
  code: number | null;
  signal: string | null;
  killedAfterBudget: boolean;
  ms: number;
}

/** The problem with a graceful stop, or undefined when it was clean. */
export function gracefulStopProblem(s: GracefulStop, budgetMs: number): string | undefined {
  if (s.killedAfterBudget) return `${s.name}: SIGTERM did not stop it within its drain budget of ${budgetMs} ms (SIGKILLed)`;
  if (s.code !== 0 || s.signal !== null) return `${s.name}: a graceful stop ended with ${s.signal ? `signal ${s.signal}` : `exit status ${s.code}`}, not 0`;
  return undefined;
}

/** One compiled worker process. */
export class WorkerChild {
  readonly child: LoggedProcess;
  stopped = false;

  constructor(
    readonly name: string,
    readonly kind: "synthetic" | "sd",
    binary: string,
    args: string[],
    logFile: string,
    env: Record<string, string>,
    /** Names its --work-dir (shared with the killed worker it replaced, if any). */
    readonly home: string = name,
  ) {
    this.child = spawnLogged([binary, "--name", name, "--progress", "log", "--log-level", "info", ...args], logFile, env);
  }

  get pid(): number {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.child.proc.exitCode === null && this.child.proc.signalCode === null;
  }

  async kill9(): Promise<void> {
    this.child.proc.kill("SIGKILL");
    await this.child.proc.exited;
  }

  signal(sig: "SIGSTOP" | "SIGCONT" | "SIGTERM"): void {
    this.child.proc.kill(sig);
  }

  /** SIGTERM (drain), then SIGKILL if it is still running after `budgetMs`; says how it ended. */
  async stop(budgetMs: number): Promise<GracefulStop> {
    this.signal("SIGTERM");
    const started = Date.now();
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      this.child.proc.kill("SIGKILL");
    }, budgetMs);
    const code = await this.child.proc.exited;
    clearTimeout(timer);
    return { name: this.name, code, signal: this.child.proc.signalCode === null ? null : String(this.child.proc.signalCode), killedAfterBudget: killed, ms: Date.now() - started };
  }
}

/** One row of /proc: pid, parent pid, process group. */
export interface ProcEntry {
  pid: number;
  ppid: number;
  pgid: number;
  comm: string;
}

/** Every process visible in /proc (the stat line's comm may contain spaces and parentheses). */
export function listProcesses(): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue;
    }
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const fields = stat.slice(close + 2).split(" ");
    if (fields[0] === "Z") continue;
    out.push({ pid: Number(name), comm, ppid: Number(fields[1]), pgid: Number(fields[2]) });
  }
  return out;
}

/**
 * Processes that belong to the given roots: in one of their process groups (an engine leads its own
 * group), or descended from one of them through the parent chain.
 */
export function survivorsOf(roots: Set<number>, groups: Set<number>): ProcEntry[] {
  const procs = listProcesses();
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const descends = (p: ProcEntry): boolean => {
    for (let cur: ProcEntry | undefined = p, hops = 0; cur && hops < 64; cur = byPid.get(cur.ppid), hops++)
      if (roots.has(cur.ppid)) return true;
    return false;
  };
  return procs.filter((p) => !roots.has(p.pid) && (groups.has(p.pgid) || groups.has(p.pid) || descends(p)));
}

/** Pids a shim appended to a file, one per line. */
export function recordedPids(path: string): number[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").split("\n").filter(Boolean).map(Number);
}
