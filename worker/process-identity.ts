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

/**
 * A process named for the life of the host: its pid and, where /proc tells (Linux), its start time,
 * so that a later process given the same pid (after a crash, or a container restart that gives a new
 * worker its predecessor's pid) is not taken for it. Owner records, cache pins and cache locks all
 * name their holder this way.
 */
export interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks after boot (/proc/<pid>/stat field 22); absent where there is no /proc. */
  startTime?: string;
}

let self: ProcessIdentity | undefined;

/** This process's identity. */
export function selfIdentity(): ProcessIdentity {
  if (self?.pid !== process.pid) {
    const startTime = processStartTime(process.pid);
    self = startTime === undefined ? { pid: process.pid } : { pid: process.pid, startTime };
  }
  return { ...self };
}

/**
 * True while the process an identity names runs: the same pid and, where the identity has a start
 * time and /proc tells, the same start time. Without /proc the pid alone decides.
 */
export function identityAlive(identity: ProcessIdentity): boolean {
  if (identity.startTime === undefined) return pidAlive(identity.pid);
  const now = processStartTime(identity.pid);
  if (now !== undefined) return now === identity.startTime;
  // No /proc entry: gone (or /proc is unavailable, then the pid alone decides).
  return readProcStat(process.pid) === undefined ? pidAlive(identity.pid) : false;
}

/** True when a process with this pid exists on this host (EPERM means it exists but is not ours). */
function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === "EPERM";
  }
}

/** An identity as a file name part: `<pid>.<startTime>`, or `<pid>` where /proc gives no start time. */
export function identityTag({ pid, startTime }: ProcessIdentity): string {
  return startTime === undefined ? String(pid) : `${pid}.${startTime}`;
}

/** The identity an identityTag names; undefined when `tag` is not one. */
export function parseIdentityTag(tag: string): ProcessIdentity | undefined {
  const m = /^(\d{1,10})(?:\.(\d{1,24}))?$/.exec(tag);
  if (!m) return undefined;
  const pid = Number(m[1]);
  if (pid <= 0 || pid > 2 ** 31) return undefined;
  return m[2] === undefined ? { pid } : { pid, startTime: m[2] };
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
