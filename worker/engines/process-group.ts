import { spawn, type ChildProcess } from "node:child_process";
import { engineEnv } from "./engine-env.js";

/** How a child process ended: an exit code, or the signal that killed it. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process that leads its own process group, so that one signal reaches everything it started. */
export interface GroupChild {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves once the leader has exited and been reaped. */
  readonly exited: Promise<ChildExit>;
  exit?: ChildExit;
}

/** Raised when a program cannot be started at all (missing, not executable). */
export class SpawnError extends Error {
  readonly code = "spawn_failed";
  constructor(readonly binary: string, cause: unknown) {
    super(`cannot start ${binary}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "SpawnError";
  }
}

/**
 * Starts `binary` with an argv array (never a shell) in its own process group (`detached`),
 * stdout and stderr piped, with the minimal engine environment unless `env` is given (engineEnv:
 * never the worker's tokens). Rejects with SpawnError when the program cannot start. `onSpawn` gets
 * the group id as soon as the process runs, so that a crash recovery record can name it.
 */
export async function spawnGroup(
  binary: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; onSpawn?: (pgid: number) => void } = {},
): Promise<GroupChild> {
  const child = spawn(binary, args, { cwd: opts.cwd, env: opts.env ?? engineEnv(), detached: true, stdio: ["ignore", "pipe", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", () => {
      opts.onSpawn?.(child.pid!);
      resolve();
    });
    child.once("error", (err) => reject(new SpawnError(binary, err)));
  });
  // Later errors (a failed kill of an exited child) must not become unhandled 'error' events.
  child.on("error", () => {});
  const group: { child: ChildProcess; pid: number; exited: Promise<ChildExit>; exit?: ChildExit } = {
    child,
    pid: child.pid!,
    exited: new Promise<ChildExit>((resolve) => {
      child.once("exit", (code, signal) => {
        group.exit = { code, signal };
        resolve(group.exit);
      });
    }),
  };
  return group;
}

/** Sends a signal to every process of the group; false when the group no longer exists. */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** True while any process of the group is alive. */
export function groupAlive(pid: number): boolean {
  return signalGroup(pid, 0 as unknown as NodeJS.Signals);
}

/**
 * Stops the whole group: SIGTERM, then SIGKILL after `graceMs` if the leader has not exited,
 * then SIGKILL again to whatever the leader left behind. Resolves once the leader is reaped and the
 * group is empty.
 */
export async function killGroup(group: GroupChild, graceMs: number): Promise<ChildExit> {
  if (!group.exit) {
    signalGroup(group.pid, "SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const graceOver = new Promise<"grace">((resolve) => {
      timer = setTimeout(() => resolve("grace"), graceMs);
    });
    const first = await Promise.race([group.exited, graceOver]);
    clearTimeout(timer);
    if (first === "grace") signalGroup(group.pid, "SIGKILL");
  }
  const exit = await group.exited;
  if (signalGroup(group.pid, "SIGKILL")) await groupGone(group.pid, 2000);
  return exit;
}

/**
 * Waits (polling; the kernel gives no event for it) until no process of the group is left, so that
 * grandchildren the leader left behind are gone too; gives up after `limitMs`.
 */
export async function groupGone(pid: number, limitMs: number): Promise<boolean> {
  const deadline = Date.now() + limitMs;
  while (groupAlive(pid)) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(5);
  }
  return true;
}

/** Keeps the last lines a program wrote, for error messages. Carriage returns end a line too. */
export class LineTail {
  private lines: string[] = [];
  private partial = "";
  constructor(private readonly max = 20) {}

  push(text: string): void {
    const parts = (this.partial + text).split(/\r\n|\n|\r/);
    this.partial = parts.pop() ?? "";
    for (const line of parts) this.add(line);
  }

  /** The kept lines, the unfinished one included, joined with newlines. */
  text(): string {
    const all = this.partial.trim() === "" ? this.lines : [...this.lines, this.partial];
    return all.slice(-this.max).join("\n");
  }

  private add(line: string): void {
    // eslint-disable-next-line no-control-regex
    const clean = line.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").trimEnd();
    if (clean.trim() === "") return;
    this.lines.push(clean);
    if (this.lines.length > this.max) this.lines.shift();
  }
}
