import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@connectrpc/connect";
import type { Task } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { readProcStat } from "../../worker/process-identity.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { REPO, WorkerProcess, buildWorkerBinary, removeWorkerBinary, sha256Hex, startFileServer } from "./worker-harness.js";

/** Explicit: real processes on a loaded 2-core machine can take longer than bun's 5 s default. */
const TEST_TIMEOUT_MS = 60_000;
const HOOK_TIMEOUT_MS = 60_000;

/**
 * Issue 6/10: a worker killed with kill -9 must not leave its engine processes running or its job
 * dirs behind. Two compiled workers share one --work-dir, each running a job whose sd-cli fixture
 * hangs (with a grandchild in its group); one is killed with SIGKILL, and a worker started again on
 * that --work-dir kills the orphaned group and removes its dir, leaving the live worker's alone.
 */
const MODEL = new Uint8Array(40_000).map((_, i) => (i * 13) & 0xff);
const SD_CLI = join(REPO, "test/fixtures/sd-cli");

let t: TestStudio;
let files: ReturnType<typeof startFileServer>;
let dir: string;
let jobs: Client<typeof JobService>;
const workers: WorkerProcess[] = [];
const pidsToReap: number[] = [];

/** Running and not a zombie (an orphan's zombie waits for init to reap it). */
function running(pid: number): boolean {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.state !== "Z";
}

function startWorker(name: string, childPidFile: string, extra: string[] = []): WorkerProcess {
  const w = new WorkerProcess(
    [
      "--server", t.url,
      "--name", name,
      "--slots", "1",
      "--cache-dir", join(dir, "cache"),
      "--work-dir", join(dir, "work"),
      "--sd-cli", SD_CLI,
      "--engines", "sd-cpp",
      "--progress", "log",
      ...extra,
    ],
    { FAKE_SD_MODE: "hang", FAKE_SD_CHILD_PID_FILE: childPidFile },
  );
  workers.push(w);
  return w;
}

/** Waits (polling: a file's appearance has no event here) until the fixture has written its grandchild's pid. */
async function childPid(file: string): Promise<number> {
  const deadline = Date.now() + 20_000;
  while (!existsSync(file) || readFileSync(file, "utf8") === "") {
    if (Date.now() > deadline) throw new Error(`the sd-cli fixture never wrote ${file}`);
    await Bun.sleep(20);
  }
  const pid = Number(readFileSync(file, "utf8"));
  pidsToReap.push(pid);
  return pid;
}

/** Starts a hanging image job and returns the sd-cli leader's pid (its process group) and its grandchild's pid. */
async function hangingJob(w: WorkerProcess, childPidFile: string): Promise<{ jobId: string; leader: number; child: number }> {
  const task = { kind: { case: "image", value: { prompt: "never finishes", seed: 7n, batchCount: 1 } } } as Task;
  const job = (await jobs.createJob({ model: "crash-image", task, maxAttempts: 1 })).job!;
  const started = await w.waitForLine((l) => l.msg === "sd-cli started" && l.jobId === job.id);
  const leader = started.pid as number;
  pidsToReap.push(leader);
  return { jobId: job.id, leader, child: await childPid(childPidFile) };
}

/** The job dirs under the shared --work-dir, with the pid of the worker each owner record names. */
function jobDirs(): Array<{ name: string; owner: number }> {
  const work = join(dir, "work");
  return readdirSync(work)
    .filter((n) => n.startsWith("job-"))
    .map((name) => ({ name, owner: JSON.parse(readFileSync(join(work, name, "owner.json"), "utf8")).worker.pid as number }));
}

beforeAll(async () => {
  buildWorkerBinary();
  dir = mkdtempSync(join(tmpdir(), "worker-crash-"));
  t = await startTestStudio({ heartbeatIntervalMs: 300, leaseTtlMs: 5000 });
  jobs = t.client(JobService);
  files = startFileServer({ "crash.gguf": MODEL });
  await t.client(RegistryService).createModel({
    name: "crash-image",
    source: {
      engine: ModelEngine.SD_CPP,
      files: [{ role: ModelFileRole.MODEL, filename: "crash.gguf", url: `${files.url}/crash.gguf`, sha256: sha256Hex(MODEL), approxBytes: BigInt(MODEL.byteLength) }],
      cliDefaults: { steps: 4, width: 64, height: 64 },
    },
  });
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  for (const w of workers) w.proc.kill("SIGKILL");
  for (const w of workers) await w.exited;
  for (const pid of pidsToReap) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {}
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  await t?.stop();
  files?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  removeWorkerBinary();
}, HOOK_TIMEOUT_MS);

describe("crash recovery of a worker killed with kill -9", () => {
  test("the restarted worker kills the dead worker's engine group and removes its job dir; a live worker's is untouched", async () => {
    const live = startWorker("crash-live", join(dir, "live-child.pid"));
    await live.waitForLine((l) => l.msg === "connected to the studio");
    const liveJob = await hangingJob(live, join(dir, "live-child.pid"));

    const doomed = startWorker("crash-doomed", join(dir, "doomed-child.pid"));
    await doomed.waitForLine((l) => l.msg === "connected to the studio");
    const doomedJob = await hangingJob(doomed, join(dir, "doomed-child.pid"));
    expect(jobDirs().map((d) => d.owner).sort()).toEqual([live.proc.pid, doomed.proc.pid].sort());
    const doomedDir = jobDirs().find((d) => d.owner === doomed.proc.pid)!.name;
    const liveDir = jobDirs().find((d) => d.owner === live.proc.pid)!.name;

    doomed.proc.kill("SIGKILL");
    await doomed.exited;
    // The bug: nothing stops the engine of a worker that died without a word.
    expect(running(doomedJob.leader)).toBe(true);
    expect(running(doomedJob.child)).toBe(true);
    expect(existsSync(join(dir, "work", doomedDir))).toBe(true);

    const restarted = startWorker("crash-restarted", join(dir, "restarted-child.pid"));
    // Recovery runs before the session opens, so once connected its log line is there or never comes.
    await restarted.waitForLine((l) => l.msg === "connected to the studio");
    const cleaned = restarted.lines.find((l) => l.msg === "crash recovery: removed a dead worker's leftovers");
    expect(cleaned).toMatchObject({ ownerPid: doomed.proc.pid, killedGroups: [doomedJob.leader], binaries: [SD_CLI] });

    expect(running(doomedJob.leader)).toBe(false);
    expect(running(doomedJob.child)).toBe(false);
    expect(existsSync(join(dir, "work", doomedDir))).toBe(false);
    // The live worker's job, engine and dir are untouched.
    expect(running(liveJob.leader)).toBe(true);
    expect(running(liveJob.child)).toBe(true);
    expect(jobDirs()).toEqual([{ name: liveDir, owner: live.proc.pid }]);
  }, TEST_TIMEOUT_MS);
});

describe("signals during the worker's start-up", () => {
  const SIGTERM_BIT = 1n << 14n;
  /** True once the process has a SIGTERM handler (SigCgt in /proc/<pid>/status). */
  const catchesSigterm = (pid: number) => {
    try {
      const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/^SigCgt:\s*([0-9a-f]+)$/m);
      return line ? (BigInt(`0x${line[1]}`) & SIGTERM_BIT) !== 0n : false;
    } catch {
      return false;
    }
  };

  /** A worker on a fresh --work-dir holding a dead worker's job dir, so that start-up has crash recovery to do. */
  function startupWorker(name: string): { w: WorkerProcess; leftBehind: string } {
    const work = join(dir, `work-${name}`);
    const leftBehind = join(work, "job-left-behind");
    mkdirSync(leftBehind, { recursive: true });
    const w = new WorkerProcess([
      "--server", t.url, "--name", name, "--cache-dir", join(dir, "cache"), "--work-dir", work,
      "--engines", "synthetic", "--progress", "log",
    ]);
    workers.push(w);
    return { w, leftBehind };
  }

  /** Its session (if it opened one) is gone: the studio notices the stream's end a moment after the exit at most. */
  async function notListed(name: string): Promise<boolean> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const listed = (await t.client(WorkerService).listWorkers({})).workers.some((x) => x.name === name);
      if (!listed) return true;
      if (Date.now() > deadline) return false;
      await Bun.sleep(50);
    }
  }

  test("the SIGTERM handler is installed before start-up does anything: SIGTERM then stops it there, exit 0", async () => {
    const { w } = startupWorker("startup-first");
    // Polling: the kernel gives no event for a handler being installed.
    while (!catchesSigterm(w.proc.pid) && w.proc.exitCode === null) await Bun.sleep(1);
    w.proc.kill("SIGTERM");
    expect(await w.exited).toBe(0);
    expect(w.stderr.join("\n")).toBe("");
    // Handled at the next step of start-up (configuration or crash recovery), before it connected.
    expect(w.lines.at(-1)).toMatchObject({ msg: "stopped during start-up", signal: "SIGTERM" });
    expect(w.lines.some((l) => l.msg === "connected to the studio")).toBe(false);
  }, TEST_TIMEOUT_MS);

  // At fixed moments after exec and at log lines: wherever start-up is, SIGTERM stops it cleanly with exit 0.
  // Only a signal in the runtime's own first milliseconds, before any of the worker's code runs, meets
  // the default action: then nothing may have happened (no output, the work dir untouched).
  const moments: Array<number | string> = [0, 10, 25, 50, 100, 200, 400, "crash recovery done", "studio-worker starting", "connected to the studio"];
  for (const [i, when] of moments.entries())
    test(`SIGTERM ${typeof when === "number" ? `${when} ms after exec` : `at "${when}"`}: exit 0 and nothing left running`, async () => {
      const name = `startup-${i}`;
      const { w, leftBehind } = startupWorker(name);
      if (typeof when === "number") await Bun.sleep(when);
      else await w.waitForLine((l) => l.msg === when);
      w.proc.kill("SIGTERM");
      const code = await w.exited;
      if (code !== 0) {
        expect({ code, signal: w.proc.signalCode, lines: w.lines, stderr: w.stderr, leftBehind: existsSync(leftBehind) })
          .toEqual({ code: 143, signal: "SIGTERM", lines: [], stderr: [], leftBehind: true });
        return;
      }
      expect(w.stderr.join("\n")).toBe("");
      expect(["stopped during start-up", "studio-worker stopped"]).toContain(String(w.lines.at(-1)?.msg));
      expect(await notListed(name)).toBe(true);
    }, TEST_TIMEOUT_MS);
});
