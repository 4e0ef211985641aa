import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@connectrpc/connect";
import { JobStatus, type Task } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { REPO, WorkerProcess, buildWorkerBinary, removeWorkerBinary, sha256Hex, startFileServer, watchJob } from "./worker-harness.js";

/** Explicit: real processes on a loaded 2-core machine can take longer than bun's 5 s default. */
const TEST_TIMEOUT_MS = 30_000;
const HOOK_TIMEOUT_MS = 60_000;

/**
 * `--stall-timeout` reaches the compiled worker's downloads: a file server that answers nothing
 * is given up on after 1 s (the default would wait 60 s), retried, and the retry succeeds.
 */
const MODEL = new Uint8Array(20_000).map((_, i) => (i * 7) & 0xff);

let t: TestStudio;
let files: ReturnType<typeof startFileServer>;
let dir: string;
let jobs: Client<typeof JobService>;
let worker: WorkerProcess | undefined;

beforeAll(async () => {
  buildWorkerBinary();
  dir = mkdtempSync(join(tmpdir(), "worker-stall-"));
  t = await startTestStudio({ heartbeatIntervalMs: 300, leaseTtlMs: 5000 });
  jobs = t.client(JobService);
  files = startFileServer({ "stall.gguf": MODEL });
  await t.client(RegistryService).createModel({
    name: "stall-image",
    source: {
      engine: ModelEngine.SD_CPP,
      files: [{ role: ModelFileRole.MODEL, filename: "stall.gguf", url: `${files.url}/stall.gguf`, sha256: sha256Hex(MODEL), approxBytes: BigInt(MODEL.byteLength) }],
      cliDefaults: { steps: 2, width: 64, height: 64 },
    },
  });
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  worker?.proc.kill("SIGKILL");
  await worker?.exited;
  await t?.stop();
  files?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  removeWorkerBinary();
}, HOOK_TIMEOUT_MS);

describe("--stall-timeout", () => {
  test("a download with no bytes for longer than --stall-timeout is retried, and the retry completes the job", async () => {
    const released = Promise.withResolvers<void>();
    files.hold = () => released.promise;
    try {
      worker = new WorkerProcess([
        "--server", t.url,
        "--name", "stall",
        "--cache-dir", join(dir, "cache"),
        "--work-dir", join(dir, "work"),
        "--sd-cli", join(REPO, "test/fixtures/sd-cli"),
        "--engines", "sd-cpp",
        "--progress", "log",
        "--stall-timeout", "1",
      ]);
      await worker.waitForLine((l) => l.msg === "connected to the studio");
      const task = { kind: { case: "image", value: { prompt: "slow server", seed: 1n, batchCount: 1 } } } as Task;
      const job = (await jobs.createJob({ model: "stall-image", task, maxAttempts: 1 })).job!;
      const retry = await worker.waitForLine((l) => l.kind === "stall");
      expect(retry.msg).toBe("download retry: no bytes for 1000 ms");
      files.hold = undefined;
      released.resolve();
      const done = await watchJob(jobs, job.id);
      expect(done.error).toBe("");
      expect(done.status).toBe(JobStatus.SUCCEEDED);
      expect(files.gets.get("/stall.gguf")).toBeGreaterThanOrEqual(2);
    } finally {
      files.hold = undefined;
      released.resolve();
    }
  }, TEST_TIMEOUT_MS);
});
