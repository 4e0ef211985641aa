import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@connectrpc/connect";
import { JobStatus, type Job, type Task } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { fakeSdImage } from "../fixtures/fake-image.js";
import { readOutput, watchJob } from "../e2e/worker-harness.js";
import { filesUnder } from "../chaos/invariants.js";
import { FaultServer, type Fault } from "./fault-server.js";
import { startFaultWorker, type FaultWorker } from "./fault-worker.js";
import { tryMountTmpfs, unmount } from "./tmpfs.js";

/** Explicit: real processes on a loaded 2-core machine can take longer than bun's 5 s default. */
const TEST_TIMEOUT_MS = 30_000;
const HOOK_TIMEOUT_MS = 30_000;

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const body = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 97 + seed * 13 + (i >> 11)) & 0xff);

let t: TestStudio;
let server: FaultServer;
let other: FaultServer;
let jobs: Client<typeof JobService>;
let dir: string;
let worker: FaultWorker | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "download-faults-"));
  t = await startTestStudio({ heartbeatIntervalMs: 200, leaseTtlMs: 5000 });
  jobs = t.client(JobService);
  server = await FaultServer.start();
  other = await FaultServer.start();
}, HOOK_TIMEOUT_MS);

afterEach(async () => {
  await worker?.stop();
  worker = undefined;
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await server?.stop();
  await other?.stop();
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
}, HOOK_TIMEOUT_MS);

/** Registers an sd-cpp model of one file served at `url`. */
async function model(name: string, url: string, digest: string, approxBytes?: number) {
  await t.client(RegistryService).createModel({
    name,
    source: {
      engine: ModelEngine.SD_CPP,
      files: [{ role: ModelFileRole.DIFFUSION_MODEL, filename: `${name}.gguf`, url, sha256: digest, approxBytes: approxBytes === undefined ? undefined : BigInt(approxBytes) }],
      cliDefaults: { steps: 2, width: 16, height: 16 },
    },
  });
}

const task = (prompt: string): Task => ({ kind: { case: "image", value: { prompt, seed: 5n } } }) as Task;

async function run(name: string, prompt: string, maxAttempts = 1): Promise<Job> {
  const { job } = await jobs.createJob({ model: name, task: task(prompt), maxAttempts });
  return watchJob(jobs, job!.id);
}

const storedOutputs = () => filesUnder(join(t.dataDir, "outputs")).filter((p) => !p.startsWith(".tmp/"));

/** The job succeeded with the fixture's image for its prompt. */
async function expectImage(job: Job, prompt: string) {
  expect(job.error).toBe("");
  expect(job.status).toBe(JobStatus.SUCCEEDED);
  const { data } = await readOutput(jobs, job.id, 0);
  expect(data).toEqual(Buffer.from(fakeSdImage({ prompt, seed: "5", width: 16, height: 16, index: 0 })));
}

/** The cache holds no file that is not what its name says, and nothing under the digests given. */
function expectCleanCache(cacheDir: string, absent: string[] = []) {
  const blobs = join(cacheDir, "blobs", "sha256");
  for (const f of filesUnder(blobs)) expect(sha256(readFileSync(join(blobs, f)))).toBe(f);
  for (const d of absent) expect(existsSync(join(blobs, d))).toBe(false);
}

/** A job that fails: it says why, stores nothing, and leaves a clean cache. */
async function expectFailedCleanly(job: Job, before: string[], cacheDir: string, absent: string[]) {
  expect(job.status).toBe(JobStatus.FAILED);
  expect(job.outputs).toEqual([]);
  expect(storedOutputs()).toEqual(before);
  expectCleanCache(cacheDir, absent);
}

function setup(name: string, data: Uint8Array, fault: Fault, faultCount = Infinity, downloads: { cacheDir?: string } = {}) {
  const cacheDir = downloads.cacheDir ?? join(dir, `cache-${name}`);
  const url = server.serve(`${name}.gguf`, data, fault, faultCount);
  worker = startFaultWorker(t.url, dir, { cacheDir });
  return { cacheDir, url };
}

describe("download faults through the real worker runtime", () => {
  test("a connection dropped mid-file resumes with a Range request and the job succeeds", async () => {
    const data = body(300_000, 1);
    const { cacheDir, url } = setup("drop", data, { kind: "drop", afterBytes: 120_000 }, 1);
    await model("drop", url, sha256(data));
    const done = await run("drop", "after a drop");
    await expectImage(done, "after a drop");
    expect(done.attempts).toBe(1);
    const gets = server.gets("drop.gguf");
    expect(gets.length).toBe(2);
    expect(gets[1]!.range).toMatch(/^bytes=[1-9]\d*-\d*$/);
    expectCleanCache(cacheDir);
    expect(readFileSync(join(cacheDir, "blobs", "sha256", sha256(data)))).toEqual(Buffer.from(data));
    await expectImage(await run("drop", "from the cache"), "from the cache");
    expect(server.gets("drop.gguf").length).toBe(2);
  }, TEST_TIMEOUT_MS);

  test("a sha256 mismatch fails the job for good with both digests; nothing is cached; healed, it succeeds", async () => {
    const data = body(100_000, 2);
    const wrong = body(100_000, 3);
    const before = storedOutputs();
    const { cacheDir, url } = setup("mismatch", data, { kind: "wrong-bytes", bytes: wrong });
    await model("mismatch", url, sha256(data));
    const done = await run("mismatch", "wrong bytes", 3);
    expect(done.attempts).toBe(1);
    expect(done.error).toContain(sha256(data));
    expect(done.error).toContain(sha256(wrong));
    expect(done.error).toContain("mismatch.gguf");
    await expectFailedCleanly(done, before, cacheDir, [sha256(data), sha256(wrong)]);
    expect(filesUnder(join(cacheDir, "partial"))).toEqual([]);
    server.heal("mismatch.gguf");
    await expectImage(await run("mismatch", "right bytes"), "right bytes");
  }, TEST_TIMEOUT_MS);

  test("a server that ignores Range: a dropped download restarts from zero and the file is whole", async () => {
    const data = body(250_000, 4);
    const { cacheDir, url } = setup("norange", data, { kind: "ignore-range" });
    server.files.get("/norange.gguf")!.fault = { kind: "drop", afterBytes: 90_000 };
    server.files.get("/norange.gguf")!.faultCount = 1;
    await model("norange", url, sha256(data));
    // After the first (dropped) answer the server keeps ignoring Range: a 200 with the whole file.
    const ignoring = setInterval(() => {
      const f = server.files.get("/norange.gguf")!;
      if (f.faultCount === 0) f.fault = { kind: "ignore-range" }, (f.faultCount = Infinity);
    }, 5);
    try {
      const done = await run("norange", "no ranges");
      await expectImage(done, "no ranges");
    } finally {
      clearInterval(ignoring);
    }
    expect(server.gets("norange.gguf").length).toBeGreaterThanOrEqual(2);
    expect(readFileSync(join(cacheDir, "blobs", "sha256", sha256(data)))).toEqual(Buffer.from(data));
    expectCleanCache(cacheDir);
  }, TEST_TIMEOUT_MS);

  test("a trickle slower than the stall timeout: retried, then the job fails saying so; healed, it succeeds", async () => {
    const data = body(60_000, 5);
    const before = storedOutputs();
    const { cacheDir, url } = setup("trickle", data, { kind: "trickle", firstBytes: 0, everyMs: 1000 });
    await model("trickle", url, sha256(data));
    const done = await run("trickle", "slow", 2);
    expect(done.attempts).toBe(2);
    expect(done.error).toContain("no bytes for 400 ms");
    expect(done.error).toContain("trickle.gguf");
    await expectFailedCleanly(done, before, cacheDir, [sha256(data)]);
    // Each attempt retried the stalled download (maxRetries 2): three GETs per attempt.
    expect(server.gets("trickle.gguf").length).toBe(6);
    server.heal("trickle.gguf");
    await expectImage(await run("trickle", "fast again"), "fast again");
  }, TEST_TIMEOUT_MS);

  test("a 302 to another origin: the token goes to the first origin only, and the job succeeds", async () => {
    const data = body(80_000, 6);
    const url = server.serve("moved.gguf", new Uint8Array(), { kind: "redirect", to: other.origin });
    other.serve("moved.gguf", data);
    const cacheDir = join(dir, "cache-moved");
    worker = startFaultWorker(t.url, dir, { cacheDir, hfToken: "hf_not_for_others", isTokenHost: (h) => h === "127.0.0.1" });
    await model("moved", url, sha256(data));
    await expectImage(await run("moved", "moved away"), "moved away");
    expect(server.gets("moved.gguf").map((s) => s.authorization)).toEqual(["Bearer hf_not_for_others"]);
    expect(other.gets("moved.gguf").length).toBe(1);
    expect(other.gets("moved.gguf").every((s) => s.authorization === undefined)).toBe(true);
    expectCleanCache(cacheDir);
  }, TEST_TIMEOUT_MS);
});

const tmpfs = tryMountTmpfs(join(tmpdir(), `faults-tmpfs-probe-${process.pid}`), "64k");

describe("a full disk (a small tmpfs as the cache dir)", () => {
  if (!tmpfs.ok) console.warn(`download-faults: full-disk test skipped: ${tmpfs.reason}`);
  test.skipIf(!tmpfs.ok)(
    "known size: refused before downloading; unknown size: ENOSPC mid-file; both fail for good, the cache stays clean, and with room the job succeeds",
    async () => {
      const cacheDir = join(dir, "cache-tmpfs");
      mkdirSync(cacheDir, { recursive: true });
      const mounted = tryMountTmpfs(cacheDir, "160k");
      expect(mounted.ok).toBe(true);
      try {
        const data = body(400_000, 7);
        const before = storedOutputs();
        const url = server.serve("big.gguf", data);
        worker = startFaultWorker(t.url, dir, { cacheDir });
        await model("big", url, sha256(data), data.byteLength);
        const early = await run("big", "too big", 3);
        expect(early.attempts).toBe(1);
        expect(early.error).toContain("not enough disk space");
        expect(early.error).toContain("big.gguf");
        await expectFailedCleanly(early, before, cacheDir, [sha256(data)]);

        const chunkedUrl = server.serve("big-chunked.gguf", data, { kind: "chunked" });
        await model("big-chunked", chunkedUrl, sha256(data));
        const midway = await run("big-chunked", "no room", 3);
        expect(midway.attempts).toBe(1);
        expect(midway.error).toContain("disk full");
        expect(midway.error).toContain("big-chunked.gguf");
        await expectFailedCleanly(midway, before, cacheDir, [sha256(data)]);

        const grown = Bun.spawnSync(["mount", "-o", "remount,size=4m", cacheDir], { stderr: "pipe" });
        expect(grown.exitCode).toBe(0);
        await expectImage(await run("big", "room now"), "room now");
        expectCleanCache(cacheDir);
      } finally {
        await worker?.stop();
        worker = undefined;
        unmount(cacheDir);
      }
    },
    TEST_TIMEOUT_MS,
  );
});
