import type { Subprocess } from "bun";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** System calls a process made over a window, by name. */
export interface SyscallCounts {
  total: number;
  byName: Map<string, number>;
}

/**
 * Counts a running process's system calls (all its threads) between start() and stop(), with
 * `strace -c -f -p`: on a shared machine a count moves far less than CPU time, and SQLite's
 * commits, socket writes and log writes are mostly system calls. Tracing slows the process down:
 * take counts from such a run, never times.
 */
export function syscallCounter(pid: number) {
  const dir = mkdtempSync(join(tmpdir(), "bench-strace-"));
  const out = join(dir, "counts.txt");
  let proc: Subprocess | undefined;
  return {
    async start(): Promise<void> {
      proc = Bun.spawn([process.env.STRACE ?? "strace", "-c", "-f", "-o", out, "-p", String(pid)], { stdout: "ignore", stderr: "pipe" });
      // strace attaches to every thread before it counts; give it a moment (it says so on stderr).
      const reader = (proc.stderr as ReadableStream<Uint8Array>).getReader();
      const deadline = Date.now() + 5000;
      let said = "";
      while (!said.includes("attached") && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        said += new TextDecoder().decode(value);
      }
      reader.releaseLock();
    },
    async stop(): Promise<SyscallCounts> {
      if (!proc) throw new Error("syscallCounter: stop before start");
      proc.kill("SIGINT");
      await proc.exited;
      const counts = parseStraceSummary(readFileSync(out, "utf8"));
      rmSync(dir, { recursive: true, force: true });
      return counts;
    },
  };
}

/** Reads the table `strace -c` prints (% time, seconds, usecs/call, calls, errors, syscall). */
export function parseStraceSummary(text: string): SyscallCounts {
  const byName = new Map<string, number>();
  let total = 0;
  for (const line of text.split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 5 || !/^\d/.test(cols[0]!)) continue;
    const name = cols[cols.length - 1]!;
    if (name === "total") continue;
    const calls = Number(cols[3]);
    if (!Number.isFinite(calls)) continue;
    byName.set(name, calls);
    total += calls;
  }
  return { total, byName };
}
