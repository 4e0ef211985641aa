import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killGroup, spawnGroup, type GroupChild } from "../../../worker/engines/process-group.js";
import {
  JobDirRecord,
  OWNER_FILE,
  WarmServerRecords,
  readRecord,
  writeRecordSync,
  type OwnerRecord,
} from "../../../worker/recovery/owner-record.js";
import { readLines } from "../../helpers/read-lines.js";
import { identityAlive, identityTag, processStartTime, readProcStat, selfIdentity } from "../../../worker/process-identity.js";
import { recoverWorkDir } from "../../../worker/recovery/recover-work-dir.js";

/** Explicit: real processes on a loaded 2-core machine can take longer than bun's 5 s default. */
const TEST_TIMEOUT_MS = 30_000;

let root: string;
const groups: GroupChild[] = [];

afterEach(async () => {
  for (const g of groups.splice(0)) await killGroup(g, 0);
  if (root) rmSync(root, { recursive: true, force: true });
});

/** A real process group (a sleeping leader) as an engine would start it. */
async function sleeper(): Promise<GroupChild> {
  const g = await spawnGroup("sleep", ["300"]);
  groups.push(g);
  return g;
}

/** The identity of a worker that has died: a real process, started and then killed and reaped. */
async function deadWorker(): Promise<OwnerRecord["worker"]> {
  const g = await spawnGroup("sleep", ["300"]);
  const startTime = processStartTime(g.pid)!;
  await killGroup(g, 0);
  return { pid: g.pid, startTime };
}

const running = (pid: number) => {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.state !== "Z";
};

function jobDir(name: string, record: OwnerRecord | undefined): string {
  const dir = join(root, name);
  mkdirSync(join(dir, "models"), { recursive: true });
  writeFileSync(join(dir, "out.png"), "partial");
  if (record) writeRecordSync(join(dir, OWNER_FILE), record);
  return dir;
}

const group = (g: GroupChild, startTime = processStartTime(g.pid)!) => ({ pgid: g.pid, startTime, binary: "/usr/bin/sleep" });

describe("crash recovery of --work-dir", () => {
  test("a dead owner's running group is killed and its job dir removed; a live owner's is untouched", async () => {
    root = mkdtempSync(join(tmpdir(), "recovery-"));
    const orphan = await sleeper();
    const other = await sleeper();
    const dead = await deadWorker();
    const orphanDir = jobDir("job-orphan", { version: 1, worker: dead, groups: [group(orphan)] });
    const liveDir = jobDir("job-live", { version: 1, worker: selfIdentity(), groups: [group(other)] });

    const summary = await recoverWorkDir(root);

    expect(summary.killedGroups).toEqual([orphan.pid]);
    expect(summary.removed).toEqual([orphanDir]);
    expect(summary.kept).toEqual([liveDir]);
    expect((await orphan.exited).signal).toBe("SIGKILL");
    expect(existsSync(orphanDir)).toBe(false);
    expect(running(other.pid)).toBe(true);
    expect(await readRecord(join(liveDir, OWNER_FILE))).toMatchObject({ worker: { pid: process.pid } });
  }, TEST_TIMEOUT_MS);

  test("a reused pid is never killed: the recorded start time differs, so only the dir goes", async () => {
    root = mkdtempSync(join(tmpdir(), "recovery-"));
    const stranger = await sleeper();
    const dead = await deadWorker();
    const earlier = String(BigInt(processStartTime(stranger.pid)!) - 1n);
    const dir = jobDir("job-reused", { version: 1, worker: dead, groups: [group(stranger, earlier)] });

    const summary = await recoverWorkDir(root);

    expect(summary.killedGroups).toEqual([]);
    expect(summary.removed).toEqual([dir]);
    expect(running(stranger.pid)).toBe(true);
  }, TEST_TIMEOUT_MS);

  test("an owner pid now held by another process counts as dead", async () => {
    const me = selfIdentity();
    expect(identityAlive(me)).toBe(true);
    expect(identityAlive({ pid: me.pid, startTime: String(BigInt(me.startTime!) + 1n) })).toBe(false);
    expect(identityAlive(await deadWorker())).toBe(false);
  }, TEST_TIMEOUT_MS);

  test("a warm llama-server record of a dead worker: group killed, record removed; a live worker's record kept", async () => {
    root = mkdtempSync(join(tmpdir(), "recovery-"));
    const orphan = await sleeper();
    const live = await sleeper();
    const dead = await deadWorker();
    writeRecordSync(join(root, `llama-${orphan.pid}.json`), { version: 1, worker: dead, groups: [group(orphan)] });
    new WarmServerRecords(root).spawned(live.pid, "/usr/bin/sleep");

    const summary = await recoverWorkDir(root);

    expect(summary.killedGroups).toEqual([orphan.pid]);
    expect((await orphan.exited).signal).toBe("SIGKILL");
    expect(readdirSync(root)).toEqual([`llama-${live.pid}.json`]);
    expect(running(live.pid)).toBe(true);
    new WarmServerRecords(root).reaped(live.pid);
    expect(readdirSync(root)).toEqual([]);
  }, TEST_TIMEOUT_MS);

  test("a job dir without an owner record is removed", async () => {
    root = mkdtempSync(join(tmpdir(), "recovery-"));
    jobDir("job-unowned", undefined);
    writeFileSync(join(root, "unrelated.txt"), "x");
    await recoverWorkDir(root);
    expect(readdirSync(root)).toEqual(["unrelated.txt"]);
  }, TEST_TIMEOUT_MS);

  test("a staging dir names its creator: a dead creator's is removed (record or not), a live creator's is left to it", async () => {
    root = mkdtempSync(join(tmpdir(), "recovery-"));
    const dead = await deadWorker();
    const deadBare = jobDir(`.job-${identityTag(dead)}-aB3dE9`, undefined);
    const deadWithRecord = jobDir(`.job-${identityTag(dead)}-Zz0011`, { version: 1, worker: dead, groups: [] });
    const live = jobDir(`.job-${identityTag(selfIdentity())}-q1w2e3`, undefined);

    const summary = await recoverWorkDir(root);

    expect(summary.removed.sort()).toEqual([deadBare, deadWithRecord].sort());
    expect(summary.kept).toEqual([live]);
    expect(readdirSync(root)).toEqual([`.job-${identityTag(selfIdentity())}-q1w2e3`]);
  }, TEST_TIMEOUT_MS);

  test("a staging dir that names no creator (an older worker's) is kept while young, removed once abandoned", async () => {
    root = mkdtempSync(join(tmpdir(), "recovery-"));
    const dir = jobDir(".job-Ab12Cd", undefined);
    expect((await recoverWorkDir(root)).kept).toEqual([dir]);
    expect((await recoverWorkDir(root, { unnamedStagingMaxAgeMs: 0 })).removed).toEqual([dir]);
    expect(readdirSync(root)).toEqual([]);
  }, TEST_TIMEOUT_MS);

  test("a warm-server record's temp file is removed when its writer is dead, kept while it lives", async () => {
    root = mkdtempSync(join(tmpdir(), "recovery-"));
    const dead = await deadWorker();
    writeFileSync(join(root, `llama-123.json.${identityTag(dead)}.tmp`), "{");
    const mine = `llama-456.json.${identityTag(selfIdentity())}.tmp`;
    writeFileSync(join(root, mine), "{");
    await recoverWorkDir(root);
    expect(readdirSync(root)).toEqual([mine]);
  }, TEST_TIMEOUT_MS);

  test("a process creating job dirs and records, killed with SIGKILL at random moments, leaves nothing recovery keeps", async () => {
    root = mkdtempSync(join(tmpdir(), "recovery-"));
    const work = join(root, "work");
    const churn = join(import.meta.dir, "../../fixtures/job-dir-churn.ts");
    const kills = 30;
    let leftBeforeRecovery = 0;
    for (let i = 0; i < kills; i++) {
      const child = Bun.spawn(["bun", churn, work], { stdout: "pipe", stderr: "inherit" });
      const first = await readLines(child.stdout).next();
      expect(first.value).toBe("ready");
      // Spread the kills over a few creation rounds (each takes about a millisecond).
      await Bun.sleep((i * 7) % 11);
      child.kill("SIGKILL");
      await child.exited;
      leftBeforeRecovery += readdirSync(work).length;
      const summary = await recoverWorkDir(work);
      expect(summary.kept).toEqual([]);
      expect(readdirSync(work)).toEqual([]);
    }
    console.log(`${kills} kills during job dir creation: ${leftBeforeRecovery} entries left by them, all recovered`);
  }, 120_000);

  test("JobDirRecord: the job dir appears with its owner record, and each engine group is added to it", async () => {
    root = mkdtempSync(join(tmpdir(), "recovery-"));
    const job = await JobDirRecord.create(join(root, "work"));
    expect(job.dir.startsWith(join(root, "work", "job-"))).toBe(true);
    const g = await sleeper();
    job.addGroup(g.pid, "/usr/bin/sleep");
    const record = await readRecord(join(job.dir, OWNER_FILE));
    expect(record).toEqual({ version: 1, worker: selfIdentity(), groups: [group(g)] });
    expect(readdirSync(join(root, "work"))).toEqual([job.dir.slice(join(root, "work").length + 1)]);
  }, TEST_TIMEOUT_MS);

  test("a missing work dir is nothing to recover", async () => {
    expect(await recoverWorkDir(join(tmpdir(), "no-such-work-dir-for-recovery"))).toEqual({ removed: [], killedGroups: [], kept: [], foreign: [] });
  }, TEST_TIMEOUT_MS);
});
