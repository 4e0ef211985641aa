import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultDirs } from "../../../worker/config.js";
import { killGroup, spawnGroup, type GroupChild } from "../../../worker/engines/process-group.js";
import { ensureSafeDir, UnsafeDirError } from "../../../worker/private-dir.js";
import { OWNER_FILE, writeRecordSync, type OwnerRecord } from "../../../worker/recovery/owner-record.js";
import { processStartTime, readProcStat } from "../../../worker/process-identity.js";
import { recoverWorkDir } from "../../../worker/recovery/recover-work-dir.js";
import { parseWorkerArgs } from "../../../worker/ui/cli-options.js";

/**
 * Issue 16, item 5: another local user planted an owner record in the worker's work dir naming a
 * process group it does not own, and the worker's crash recovery killed that group. Now the work dir
 * is private (under the cache dir, 0700), a work or cache dir of another user is refused, and
 * recovery acts only on entries and records this user owns.
 *
 * Playing "another user" takes chown, so those tests need root (as CI and this machine run them).
 */
const TEST_TIMEOUT_MS = 30_000;
const OTHER_UID = 65534; // nobody
const isRoot = process.getuid?.() === 0;

let root: string | undefined;
const groups: GroupChild[] = [];
afterEach(async () => {
  for (const g of groups.splice(0)) await killGroup(g, 0);
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

/** A running process group standing for one the planting user wants killed (root's, in the audit). */
async function victim(): Promise<GroupChild> {
  const g = await spawnGroup("sleep", ["300"]);
  groups.push(g);
  return g;
}

/** The identity of a worker that has died, so that recovery would consider its record abandoned. */
async function deadWorker(): Promise<OwnerRecord["worker"]> {
  const g = await spawnGroup("sleep", ["300"]);
  const startTime = processStartTime(g.pid)!;
  await killGroup(g, 0);
  return { pid: g.pid, startTime };
}

const running = (pid: number) => {
  const st = readProcStat(pid);
  return st !== undefined && st.state !== "Z";
};

describe.skipIf(!isRoot)("records planted by another user", () => {
  test("a job dir another user made, naming a live group, is neither trusted nor removed", async () => {
    root = mkdtempSync(join(tmpdir(), "foreign-records-"));
    const target = await victim();
    const planted = join(root, "job-planted");
    mkdirSync(planted);
    writeRecordSync(join(planted, OWNER_FILE), {
      version: 1,
      worker: await deadWorker(),
      groups: [{ pgid: target.pid, startTime: processStartTime(target.pid)!, binary: "/usr/bin/sleep" }],
    });
    chownSync(join(planted, OWNER_FILE), OTHER_UID, OTHER_UID);
    chownSync(planted, OTHER_UID, OTHER_UID);

    const summary = await recoverWorkDir(root);

    expect(summary.killedGroups).toEqual([]);
    expect(summary.foreign).toEqual([planted]);
    expect(running(target.pid)).toBe(true);
    expect(existsSync(join(planted, OWNER_FILE))).toBe(true);
  }, TEST_TIMEOUT_MS);

  test("a record another user wrote into one of our job dirs, and a llama record of theirs, are ignored too", async () => {
    root = mkdtempSync(join(tmpdir(), "foreign-records-"));
    const target = await victim();
    const record: OwnerRecord = {
      version: 1,
      worker: await deadWorker(),
      groups: [{ pgid: target.pid, startTime: processStartTime(target.pid)!, binary: "/usr/bin/sleep" }],
    };
    const ours = join(root, "job-ours");
    mkdirSync(ours);
    writeRecordSync(join(ours, OWNER_FILE), record);
    chownSync(join(ours, OWNER_FILE), OTHER_UID, OTHER_UID);
    const llama = join(root, `llama-${target.pid}.json`);
    writeRecordSync(llama, record);
    chownSync(llama, OTHER_UID, OTHER_UID);

    const summary = await recoverWorkDir(root);

    expect(summary.killedGroups).toEqual([]);
    expect(summary.foreign.sort()).toEqual([join(ours, OWNER_FILE), llama].sort());
    expect(running(target.pid)).toBe(true);
  }, TEST_TIMEOUT_MS);

  test("a work dir or cache dir owned by another user is refused with a clear error", () => {
    root = mkdtempSync(join(tmpdir(), "foreign-dirs-"));
    const theirs = join(root, "theirs");
    mkdirSync(theirs, { mode: 0o700 });
    chownSync(theirs, OTHER_UID, OTHER_UID);
    expect(() => ensureSafeDir(theirs, "--work-dir", { private: true })).toThrow(UnsafeDirError);
    expect(() => ensureSafeDir(theirs, "--cache-dir", { private: false })).toThrow(/owned by uid 65534, not by this user/);
  });

  test("the worker program refuses to start on another user's work dir (exit 2, before it connects)", () => {
    root = mkdtempSync(join(tmpdir(), "foreign-dirs-"));
    const theirs = join(root, "theirs");
    mkdirSync(theirs, { mode: 0o777 });
    chmodSync(theirs, 0o1777);
    chownSync(theirs, OTHER_UID, OTHER_UID);
    const r = Bun.spawnSync(
      [process.execPath, join(import.meta.dir, "../../../worker/main.ts"), "--server", "http://127.0.0.1:1", "--engines", "synthetic", "--cache-dir", join(root, "cache"), "--work-dir", theirs],
      { env: { PATH: process.env.PATH ?? "", HOME: root } },
    );
    expect(r.exitCode).toBe(2);
    expect(r.stderr.toString()).toContain(`studio-worker: bad configuration: --work-dir ${theirs}: it is owned by uid 65534`);
  }, TEST_TIMEOUT_MS);
});

describe("a private work dir by default", () => {
  test("the default work dir is under the cache dir (following --cache-dir), not the shared temp dir", () => {
    const d = defaultDirs({ XDG_CACHE_HOME: "/home/gpu/.cache" });
    expect(d.workDir).toBe("/home/gpu/.cache/studio-worker/work");
    const config = parseWorkerArgs(["bun", "worker", "--server", "http://studio:8080", "--cache-dir", "/srv/cache"], { env: {} });
    expect(config.workDir).toBe("/srv/cache/work");
    expect(parseWorkerArgs(["bun", "worker", "--server", "http://studio:8080", "--work-dir", "/srv/w"], { env: {} }).workDir).toBe("/srv/w");
  });

  test("a missing work dir is created 0700; one of ours open to others is narrowed to 0700; a world-writable cache dir is refused", () => {
    root = mkdtempSync(join(tmpdir(), "private-dirs-"));
    const fresh = join(root, "cache", "work");
    expect(ensureSafeDir(fresh, "--work-dir", { private: true })).toBeUndefined();
    expect(statSync(fresh).mode & 0o777).toBe(0o700);
    const open = join(root, "open");
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect(ensureSafeDir(open, "--work-dir", { private: true })).toContain("narrowed to 0700");
    expect(statSync(open).mode & 0o777).toBe(0o700);
    const shared = join(root, "shared");
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    expect(() => ensureSafeDir(shared, "--cache-dir", { private: false })).toThrow(/writable by every user/);
    chmodSync(shared, 0o755);
    expect(ensureSafeDir(shared, "--cache-dir", { private: false })).toBeUndefined();
  });
});
