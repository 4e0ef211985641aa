import { readFileSync, readdirSync } from "node:fs";

/** The fields of /proc/<pid>/stat that tell one process from a later one with the same pid. */
export interface ProcStat {
  pid: number;
  /** One letter: R, S, D, Z (zombie), T, ... */
  state: string;
  /** Process group id (field 5). */
  pgrp: number;
  /** Start time in clock ticks after boot (field 22): with the pid, it names one process for the life of the host. */
  startTime: string;
}

/**
 * Reads /proc/<pid>/stat; undefined when the process is gone (or there is no /proc). The command
 * name (field 2) may hold spaces and parentheses, so the fields after it are counted from the last ')'.
 */
export function readProcStat(pid: number): ProcStat | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const close = text.lastIndexOf(")");
  if (close < 0) return undefined;
  // After ")": field 3 (state) is index 0, so field N is index N - 3.
  const rest = text.slice(close + 2).split(" ");
  const state = rest[0];
  const pgrp = Number(rest[2]);
  const startTime = rest[19];
  if (!state || !Number.isInteger(pgrp) || !startTime || !/^\d+$/.test(startTime)) return undefined;
  return { pid, state, pgrp, startTime };
}

/** The start time (field 22) of a live, non-zombie process; undefined when it is gone or a zombie. */
export function processStartTime(pid: number): string | undefined {
  const stat = readProcStat(pid);
  return stat && stat.state !== "Z" ? stat.startTime : undefined;
}

/** True when /proc can tell processes apart here (Linux); elsewhere recovery only removes dirs. */
export function procAvailable(): boolean {
  return processStartTime(process.pid) !== undefined;
}

/** The live (non-zombie) processes whose process group is `pgid`, found by scanning /proc. */
export function groupMembers(pgid: number): ProcStat[] {
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return [];
  }
  const members: ProcStat[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProcStat(Number(name));
    if (stat && stat.pgrp === pgid && stat.state !== "Z") members.push(stat);
  }
  return members;
}
