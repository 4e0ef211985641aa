import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { processAlive } from "../download/process-alive.js";
import { JOB_DIR_PREFIX, LLAMA_RECORD, NEW_JOB_DIR_PREFIX, OWNER_FILE, readRecord, type OwnerRecord, type RecordedGroup } from "./owner-record.js";
import { groupMembers, processStartTime, readProcStat } from "./proc-stat.js";

/** Minimal structured logger (pino's shape). */
export interface RecoveryLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** What one start-up pass found and did. */
export interface RecoverySummary {
  /** Job dirs and llama records removed because their owner worker is dead. */
  removed: string[];
  /** Process groups killed (still running for a dead owner, verified to be the recorded process). */
  killedGroups: number[];
  /** Entries owned by a live worker, left alone. */
  kept: string[];
}

/** Options of recoverWorkDir; `killWaitMs` bounds the wait for a killed group to disappear. */
export interface RecoveryOptions {
  logger?: RecoveryLogger;
  killWaitMs?: number;
}

/**
 * Crash recovery at worker start (before the session opens): for every job dir and warm
 * llama-server record under `workRoot` whose owner worker is dead (its pid is gone, or now names a
 * process with another start time), kills the recorded engine process groups still running and
 * removes the entry. A group is killed only when it is provably the recorded one (the leader's pid
 * and start time match, or the leader is gone and the group's members started after it), so a
 * reused pid is never signalled. Entries of live workers sharing the dir are left alone.
 */
export async function recoverWorkDir(workRoot: string, { logger, killWaitMs = 5000 }: RecoveryOptions = {}): Promise<RecoverySummary> {
  const summary: RecoverySummary = { removed: [], killedGroups: [], kept: [] };
  let names: string[];
  try {
    names = await readdir(workRoot);
  } catch {
    return summary;
  }
  for (const name of names) {
    const isJob = name.startsWith(JOB_DIR_PREFIX);
    const isStaging = name.startsWith(NEW_JOB_DIR_PREFIX);
    const isLlama = LLAMA_RECORD.test(name);
    if (!isJob && !isStaging && !isLlama) continue;
    const path = join(workRoot, name);
    const record = await readRecord(isLlama ? path : join(path, OWNER_FILE));
    // A staging dir without its record yet may belong to a worker creating it right now.
    if (!record && isStaging) continue;
    if (record && ownerAlive(record.worker)) {
      summary.kept.push(path);
      continue;
    }
    const killed: number[] = [];
    const survivors: number[] = [];
    for (const group of record?.groups ?? []) {
      const outcome = await killRecordedGroup(group, killWaitMs);
      if (outcome === "killed") killed.push(group.pgid);
      if (outcome === "survived") survivors.push(group.pgid);
    }
    summary.killedGroups.push(...killed);
    if (survivors.length > 0) {
      logger?.warn({ path, survivors }, "crash recovery: a dead worker's engine processes could not be killed; keeping its record");
      continue;
    }
    try {
      await rm(path, { recursive: true, force: true });
    } catch (err) {
      logger?.warn({ path, err: (err as Error).message }, "crash recovery: cannot remove a dead worker's leftovers");
      continue;
    }
    summary.removed.push(path);
    logger?.info(
      { path, ownerPid: record?.worker.pid, killedGroups: killed, binaries: record?.groups.map((g) => g.binary) ?? [] },
      record ? "crash recovery: removed a dead worker's leftovers" : "crash recovery: removed a job dir without an owner record",
    );
  }
  if (summary.removed.length > 0 || summary.kept.length > 0)
    logger?.info({ workRoot, removed: summary.removed.length, killedGroups: summary.killedGroups, kept: summary.kept.length }, "crash recovery done");
  return summary;
}

/** True while the recorded worker runs: same pid and, where /proc tells, the same start time. */
export function ownerAlive(owner: OwnerRecord["worker"]): boolean {
  if (owner.startTime === undefined) return processAlive(owner.pid);
  const now = processStartTime(owner.pid);
  if (now !== undefined) return now === owner.startTime;
  // No /proc entry: gone (or /proc is unavailable, then the pid alone decides).
  return readProcStat(process.pid) === undefined ? processAlive(owner.pid) : false;
}

/**
 * Kills one recorded group if it still runs and is provably the recorded one. "gone": nothing of
 * it is left; "foreign": the pid now names another process, or the record cannot be verified.
 */
async function killRecordedGroup(group: RecordedGroup, waitMs: number): Promise<"killed" | "gone" | "foreign" | "survived"> {
  if (group.startTime === undefined) return "foreign";
  const born = BigInt(group.startTime);
  const leader = readProcStat(group.pgid);
  const members = () => groupMembers(group.pgid).filter((m) => BigInt(m.startTime) >= born);
  if (leader && leader.state !== "Z") {
    // Linux does not hand out a pid still used as a process group id, so a reused leader pid means the group is gone.
    if (leader.startTime !== group.startTime || leader.pgrp !== group.pgid) return "foreign";
  } else if (members().length === 0) return "gone";
  try {
    process.kill(-group.pgid, "SIGKILL");
  } catch {
    return members().length === 0 ? "gone" : "survived";
  }
  const deadline = Date.now() + waitMs;
  while (members().length > 0) {
    if (Date.now() > deadline) return "survived";
    await Bun.sleep(10);
  }
  return "killed";
}
