import { readFileSync } from "node:fs";

/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these ticks (100 on every mainstream kernel build). */
const TICKS_PER_SECOND = 100;

/** CPU time (user + system) a process has used so far, in seconds, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may contain spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / TICKS_PER_SECOND;
}

/** Resident set size of a process in bytes (VmRSS in /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid} (has it exited?)`);
  return Number(m[1]) * 1024;
}

/** CPU use of a process over a window, as a percentage of one core, and its RSS at the end. */
export interface CpuSample {
  seconds: number;
  cpuPercentOfCore: number;
  rssBytes: number;
}

/**
 * Samples a process's CPU over `seconds`: the difference of /proc/<pid>/stat CPU time divided by
 * wall time. Tick granularity is 10 ms, so windows of a few seconds give a figure good to ~0.5%.
 */
export async function sampleCpu(pid: number, seconds: number): Promise<CpuSample> {
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  await Bun.sleep(seconds * 1000);
  const cpu1 = cpuSeconds(pid);
  const wall = (performance.now() - t0) / 1000;
  return { seconds: wall, cpuPercentOfCore: ((cpu1 - cpu0) / wall) * 100, rssBytes: rssBytes(pid) };
}

/** Peak RSS of a process so far (VmHWM), in bytes. */
export function peakRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status);
  if (!m) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Bytes as MiB with one decimal, for tables. */
export function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}
