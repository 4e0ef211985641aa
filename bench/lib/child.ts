import type { Subprocess } from "bun";

/** A benchmark child process with an IPC channel and a way to await its messages. */
export interface Child<In, Out> {
  pid: number;
  proc: Subprocess;
  send(message: In): void;
  /** The next message (or one already received and not yet taken) for which `match` is true. */
  waitFor<T extends Out>(match: (m: Out) => m is T, timeoutMs?: number): Promise<T>;
  /** Every message is also handed to this listener, if set. */
  onMessage?: (m: Out) => void;
  /** SIGTERM, then SIGKILL after graceMs; resolves when the process has been reaped. */
  stop(graceMs?: number): Promise<number | null>;
}

interface Waiter<Out> {
  match: (m: Out) => boolean;
  resolve: (m: Out) => void;
  reject: (err: Error) => void;
}

/** Messages nobody waited for are kept for a later waitFor, up to this many (progress reports pile up). */
const INBOX_LIMIT = 1000;

/**
 * Spawns `argv` (no shell) with Bun's IPC channel. stdout is passed through to ours unless
 * `quiet`; stderr always is, so a child's crash is visible. The child is killed if we exit first.
 */
export function spawnChild<In, Out>(
  argv: string[],
  { env, quiet = true, cwd }: { env?: Record<string, string>; quiet?: boolean; cwd?: string } = {},
): Child<In, Out> {
  const inbox: Out[] = [];
  let waiters: Waiter<Out>[] = [];
  let exitError: Error | undefined;
  const child: Child<In, Out> = {
    pid: 0,
    proc: undefined as unknown as Subprocess,
    send: (m) => child.proc.send(m),
    waitFor<T extends Out>(match: (m: Out) => m is T, timeoutMs = 120_000): Promise<T> {
      const i = inbox.findIndex(match);
      if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0] as T);
      if (exitError) return Promise.reject(exitError);
      return new Promise<T>((resolve, reject) => {
        const waiter: Waiter<Out> = {
          match,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m as T);
          },
          reject: (err) => {
            clearTimeout(timer);
            reject(err);
          },
        };
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== waiter);
          reject(new Error(`${argv.join(" ")}: no matching message within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    stop: (graceMs = 5000) => terminate(child.proc, graceMs),
  };
  const proc = Bun.spawn(argv, {
    cwd,
    env: { ...process.env, ...env },
    stdin: "ignore",
    stdout: quiet ? "ignore" : "inherit",
    stderr: "inherit",
    ipc(message: Out) {
      child.onMessage?.(message);
      const w = waiters.findIndex((x) => x.match(message));
      if (w >= 0) waiters.splice(w, 1)[0]!.resolve(message);
      else if (inbox.push(message) > INBOX_LIMIT) inbox.shift();
    },
    serialization: "advanced",
  });
  child.proc = proc;
  child.pid = proc.pid;
  const onExit = () => proc.kill("SIGKILL");
  process.once("exit", onExit);
  void proc.exited.then((code) => {
    process.off("exit", onExit);
    exitError = new Error(`${argv.join(" ")} exited with ${code ?? proc.signalCode}`);
    for (const w of waiters.splice(0)) w.reject(exitError);
  });
  return child;
}

/**
 * SIGTERM (a graceful stop), then SIGKILL if the process still runs after graceMs; resolves with
 * its exit code once it has been reaped. A process that already exited is only reaped.
 */
export async function terminate(proc: Subprocess, graceMs: number): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
  const code = await proc.exited;
  clearTimeout(timer);
  return code;
}

/**
 * Turns SIGINT, SIGTERM and SIGHUP into process.exit, so that the `exit` listeners every spawn
 * here registers kill the children (redis-server, the studio, worker processes) instead of
 * leaving them running when a benchmark is interrupted.
 */
export function exitOnSignals(): void {
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => process.exit(130));
}

/** In a child: exit when the parent's IPC channel goes away (the parent died without stopping us). */
export function exitWithParent(): void {
  process.on("disconnect", () => process.exit(0));
}
