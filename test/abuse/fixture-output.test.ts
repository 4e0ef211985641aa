import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@connectrpc/connect";
import { JobStatus, type Task } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { fakeSdImage } from "../fixtures/fake-image.js";
import { readOutput, sha256Hex, startFileServer, watchJob, writeShim } from "../e2e/worker-harness.js";
import { filesUnder } from "../chaos/invariants.js";
import { startFaultWorker, type FaultWorker } from "../faults/fault-worker.js";

const TEST_TIMEOUT_MS = 30_000;
const HOOK_TIMEOUT_MS = 30_000;

let t: TestStudio;
let jobs: Client<typeof JobService>;
let dir: string;
let ctl: string;
let files: ReturnType<typeof startFileServer>;
let worker: FaultWorker;

const MODEL_FILE = new Uint8Array([7, 7, 7, 7, 7]);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "abuse-fixture-"));
  t = await startTestStudio({ heartbeatIntervalMs: 200, leaseTtlMs: 5000 });
  jobs = t.client(JobService);
  files = startFileServer({ "out.gguf": MODEL_FILE });
  await t.client(RegistryService).createModel({
    name: "abuse-out",
    source: {
      engine: ModelEngine.SD_CPP,
      files: [{ role: ModelFileRole.DIFFUSION_MODEL, filename: "out.gguf", url: `${files.url}/out.gguf`, sha256: sha256Hex(MODEL_FILE) }],
      cliDefaults: { width: 16, height: 16, steps: 2 },
    },
  });
  ctl = join(dir, "sd.ctl");
  const shim = writeShim(dir, "sd-cli", "sd-cli", ctl, join(dir, "sd.pids"));
  worker = startFaultWorker(t.url, dir, { cacheDir: join(dir, "cache") }, { name: "fixture-out", sdCli: shim });
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await worker?.stop();
  files?.stop();
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
}, HOOK_TIMEOUT_MS);

const task = (prompt: string, batchCount = 1): Task => ({ kind: { case: "image", value: { prompt, seed: 9n, batchCount } } }) as Task;
const storedOutputs = () => filesUnder(join(t.dataDir, "outputs")).filter((p) => !p.startsWith(".tmp/"));

async function runWithMode(mode: string, prompt: string, batchCount = 1) {
  writeFileSync(ctl, `export FAKE_SD_MODE='${mode}'\n`);
  const { job } = await jobs.createJob({ model: "abuse-out", task: task(prompt, batchCount), maxAttempts: 1 });
  return watchJob(jobs, job!.id);
}

/** Malformed output from sd-cli: each job fails saying what was wrong, and nothing reaches the store. */
const BAD_MODES: Array<[mode: string, batch: number, mentions: string[]]> = [
  ["not-png", 1, ["out.png is not a valid PNG", "signature"]],
  ["truncated-png", 1, ["out.png is not a valid PNG", "truncated"]],
  ["truncated-png", 2, ["out_0.png is not a valid PNG", "truncated"]],
  ["no-output", 1, ["wrote no out.png"]],
  ["no-output", 2, ["wrote no out_0.png"]],
  ["fail", 1, ["exited with status 1", "out of memory"]],
  ["crash", 1, ["killed by SIGABRT"]],
];

describe("malformed output from the sd-cli fixture, through the worker", () => {
  for (const [mode, batch, mentions] of BAD_MODES)
    test(`${mode} (batch ${batch}): the job fails with a clear message and nothing is stored`, async () => {
      const before = storedOutputs();
      const done = await runWithMode(mode, `mode ${mode} ${batch}`, batch);
      expect(done.status).toBe(JobStatus.FAILED);
      expect(done.outputs).toEqual([]);
      for (const m of mentions) expect(done.error).toContain(m);
      expect(storedOutputs()).toEqual(before);
    }, TEST_TIMEOUT_MS);

  test("garbage on stdout (control bytes, broken progress bars) does not break a good run", async () => {
    const done = await runWithMode("garbage", "noisy", 2);
    expect(done.error).toBe("");
    expect(done.status).toBe(JobStatus.SUCCEEDED);
    for (const index of [0, 1]) {
      const { data } = await readOutput(jobs, done.id, index);
      expect(data).toEqual(Buffer.from(fakeSdImage({ prompt: "noisy", seed: "9", width: 16, height: 16, index })));
    }
  }, TEST_TIMEOUT_MS);
});
