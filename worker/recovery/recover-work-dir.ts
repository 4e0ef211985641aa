import { lstat, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { ownedByUs } from "../private-dir.js";
import {
  JOB_DIR_PREFIX,
  LLAMA_RECORD,
  NEW_JOB_DIR_PREFIX,
  OWNER_FILE,
  RECORD_TMP,
  readRecord,
  recordTmpWriter,
  stagingCreator,
  type RecordedGroup,
} from "./owner-record.js";
import { groupMembers, identityAlive, readProcStat, type ProcessIdentity } from "../process-identity.js";

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
  /** Entries (or their records) owned by another user: never acted on. */
  foreign: string[];
}

/** Options of recoverWorkDir; `killWaitMs` bounds the wait for a killed group to disappear. */
export interface RecoveryOptions {
  logger?: RecoveryLogger;
  killWaitMs?: number;
  /** Age past which a staging dir that names no creator (made by a worker before creators were named) is removed. */
  unnamedStagingMaxAgeMs?: number;
}

/** Creating a job dir takes milliseconds; a staging dir with no creator in its name this old was abandoned. */
const UNNAMED_STAGING_MAX_AGE_MS = 10 * 60_000;

/**
 * Crash recovery at worker start (before the session opens): for every job dir and warm
 * llama-server record under `workRoot` whose owner worker is dead (its pid is gone, or now names a
 * process with another start time), kills the recorded engine process groups still running and
 * removes the entry. A group is killed only when it is provably the recorded one (the leader's pid
 * and start time match, or the leader is gone and the group's members started after it), so a
 * reused pid is never signalled. Entries of live workers sharing the dir are left alone. Staging dirs
 * (`.job-*`) and record temp files name the worker writing them, so those of a worker killed mid-write
 * go too.
 */
export async function recoverWorkDir(
  workRoot: string,
  { logger, killWaitMs = 5000, unnamedStagingMaxAgeMs = UNNAMED_STAGING_MAX_AGE_MS }: RecoveryOptions = {},
): Promise<RecoverySummary> {
  const summary: RecoverySummary = { removed: [], killedGroups: [], kept: [], foreign: [] };
  let names: string[];
  try {
    names = await readdir(workRoot);
  } catch {
    return summary;
  }
  const remove = async (path: string, fields: object, msg: string): Promise<boolean> => {
    try {
      await rm(path, { recursive: true, force: true });
    } catch (err) {
      logger?.warn({ path, err: (err as Error).message }, "crash recovery: cannot remove a dead worker's leftovers");
      return false;
    }
    summary.removed.push(path);
    logger?.info({ path, ...fields }, msg);
    return true;
  };
  /** Only what this user made is acted on: another user's entry or record could name any process group. */
  const foreign = async (path: string): Promise<boolean> => {
    const st = await lstat(path).catch(() => undefined);
    if (st === undefined || ownedByUs(st)) return false;
    summary.foreign.push(path);
    logger?.warn({ path, uid: st.uid }, "crash recovery: an entry owned by another user is left alone (and not trusted)");
    return true;
  };
  for (const name of names) {
    const path = join(workRoot, name);
    if (await foreign(path)) continue;
    if (name.startsWith(NEW_JOB_DIR_PREFIX)) {
      await recoverStaging(path, name, unnamedStagingMaxAgeMs, summary, remove);
      continue;
    }
    if (name.startsWith("llama-") && RECORD_TMP.test(name)) {
      // A llama record's temp file: its writer was killed between the write and the rename.
      const writer = recordTmpWriter(name)!;
      if (identityAlive(writer)) summary.kept.push(path);
      else await remove(path, { ownerPid: writer.pid }, "crash recovery: removed a record a dead worker was writing");
      continue;
    }
    const isLlama = LLAMA_RECORD.test(name);
    if (!name.startsWith(JOB_DIR_PREFIX) && !isLlama) continue;
    if (!isLlama && (await foreign(join(path, OWNER_FILE)))) continue;
    const record = await readRecord(isLlama ? path : join(path, OWNER_FILE));
    if (record && identityAlive(record.worker)) {
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
    await remove(
      path,
      { ownerPid: record?.worker.pid, killedGroups: killed, binaries: record?.groups.map((g) => g.binary) ?? [] },
      record ? "crash recovery: removed a dead worker's leftovers" : "crash recovery: removed a job dir without an owner record",
    );
  }
  if (summary.removed.length > 0 || summary.kept.length > 0)
    logger?.info({ workRoot, removed: summary.removed.length, killedGroups: summary.killedGroups, kept: summary.kept.length }, "crash recovery done");
  return summary;
}

/**
 * A staging dir (`.job-<creator>-*`): its creator was killed between the mkdtemp and the rename when
 * that creator is dead. No engine ran in it yet (groups are added after the rename), so removing it is all.
 * A live creator may be making it right now: left alone. A dir that names no creator (an older worker's)
 * and has no readable record is removed once it is clearly abandoned.
 */
async function recoverStaging(
  path: string,
  name: string,
  unnamedMaxAgeMs: number,
  summary: RecoverySummary,
  remove: (path: string, fields: object, msg: string) => Promise<boolean>,
): Promise<void> {
  const creator: ProcessIdentity | undefined = stagingCreator(name) ?? (await readRecord(join(path, OWNER_FILE)))?.worker;
  if (creator) {
    if (identityAlive(creator)) summary.kept.push(path);
    else await remove(path, { ownerPid: creator.pid }, "crash recovery: removed a job dir a dead worker was creating");
    return;
  }
  const age = await stat(path).then((s) => Date.now() - s.mtimeMs, () => 0);
  if (age >= unnamedMaxAgeMs) await remove(path, { ageMs: Math.round(age) }, "crash recovery: removed an abandoned job dir that names no creator");
  else summary.kept.push(path);
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
