import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { JobStatus, type ImageTask, type Task } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { SessionRequestSchema, WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { SyntheticEngine } from "../../worker/engines/synthetic-engine.js";
import { syntheticImage } from "../../worker/engines/synthetic.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { readOutput, sha256Hex, startFileServer, watchJob } from "../e2e/worker-harness.js";
import { filesUnder } from "../chaos/invariants.js";
import { fakeSdImage } from "../fixtures/fake-image.js";
import { startFaultWorker, type FaultWorker } from "../faults/fault-worker.js";
import { healthStatus, tablesDigest } from "./abuse-studio.js";
import { envelope, halfOpenH2, rawH2 } from "./raw-h2.js";

const TEST_TIMEOUT_MS = 30_000;
const HOOK_TIMEOUT_MS = 30_000;
const SESSION = "/studio.v1.WorkerService/Session";

let t: TestStudio;
let jobs: Client<typeof JobService>;
let dir: string;
const workers: FaultWorker[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "abuse-stream-"));
  t = await startTestStudio({ leaseTtlMs: 1000, heartbeatIntervalMs: 200 });
  jobs = t.client(JobService);
}, HOOK_TIMEOUT_MS);

afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop();
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
}, HOOK_TIMEOUT_MS);

const utf8 = (s: string) => new TextEncoder().encode(s);
const synthTask = (prompt: string): Task => ({ kind: { case: "image", value: { prompt, seed: 3n } } }) as Task;
const storedOutputs = () => filesUnder(join(t.dataDir, "outputs")).filter((p) => !p.startsWith(".tmp/"));

function synthWorker(name: string, claims?: ModelEngine[]) {
  const w = startFaultWorker(t.url, dir, { cacheDir: join(dir, `cache-${name}`) }, { name, engines: [new SyntheticEngine()], claims });
  workers.push(w);
  return w;
}

/** Garbage on the stream: each gets a gRPC status that says what was wrong, and the studio serves on. */
const GARBAGE: Array<[label: string, path: string, contentType: string, chunks: Uint8Array[], status: string, mention: string]> = [
  ["random bytes as an envelope header", SESSION, "application/grpc", [new Uint8Array([0xde, 0xad, 0xbe, 0xef, 1, 2, 3])], "8", "readMaxBytes"],
  ["an envelope claiming 4 GiB", SESSION, "application/grpc", [envelope(0, 0xfffffff0, new Uint8Array([1, 2, 3]))], "8", "4294967280"],
  ["an envelope cut short", SESSION, "application/grpc", [envelope(0, 100, new Uint8Array([1, 2, 3]))], "3", "incomplete envelope"],
  ["a payload that is not protobuf", SESSION, "application/grpc", [envelope(0, 4, new Uint8Array([0xff, 0xff, 0xff, 0xff]))], "13", "premature EOF"],
  ["a compressed flag without an encoding", SESSION, "application/grpc", [envelope(1, 3, new Uint8Array([1, 2, 3]))], "13", "decompress"],
  ["no hello at all", SESSION, "application/grpc", [], "3", "first message of a session must be hello"],
  ["a heartbeat before hello", SESSION, "application/grpc", [envelope(0, 2, new Uint8Array([0x12, 0x00]))], "3", "must be hello"],
  ["unary CreateJob with garbage protobuf", "/studio.v1.JobService/CreateJob", "application/grpc", [envelope(0, 4, new Uint8Array([0xff, 0xff, 0xff, 0xff]))], "13", "premature EOF"],
  ["unary ListJobs with two messages", "/studio.v1.JobService/ListJobs", "application/grpc", [envelope(0, 0), envelope(0, 0)], "12", ""],
];

describe("garbage bytes on the stream (raw HTTP/2)", () => {
  let before: ReturnType<typeof tablesDigest>;
  beforeAll(() => {
    before = tablesDigest(t.dataDir);
  });
  for (const [label, path, contentType, chunks, status, mention] of GARBAGE)
    test(label, async () => {
      const r = await rawH2(t.url, path, contentType, chunks);
      expect(r.status).toBe(200);
      if (status === "12") expect(["3", "12"]).toContain(r.grpcStatus!);
      else expect(r.grpcStatus).toBe(status);
      expect(r.grpcMessage ?? "").toContain(mention);
    });

  test("Connect streaming with broken JSON in the envelope: invalid_argument in the end-stream message", async () => {
    const r = await rawH2(t.url, SESSION, "application/connect+json", [envelope(0, 5, utf8("{{{{{"))]);
    const end = JSON.parse(r.body.subarray(5).toString("utf8")) as { error: { code: string; message: string } };
    expect(end.error.code).toBe("invalid_argument");
    expect(end.error.message).toContain("SessionRequest");
  });

  test("after the garbage: the studio serves and nothing was written", async () => {
    expect(await healthStatus(t.url)).toBe("SERVING");
    expect(tablesDigest(t.dataDir)).toEqual(before);
  });
});

/** Opens a session that sends hello and then never reads, heartbeats nor closes. */
async function ghostSession(name: string, engines: ModelEngine[], slots: number) {
  const hello = create(SessionRequestSchema, { message: { case: "hello", value: { name, engines, slots } } });
  const bytes = toBinary(SessionRequestSchema, hello);
  const ghost = halfOpenH2(t.url, SESSION, "application/grpc", [envelope(0, bytes.byteLength, bytes)]);
  const workerService = t.client(WorkerService);
  for (let i = 0; i < 200 && !(await workerService.listWorkers({})).workers.some((w) => w.name === name); i++) await Bun.sleep(20);
  expect((await workerService.listWorkers({})).workers.map((w) => w.name)).toContain(name);
  return ghost;
}

/** Runs synthetic jobs and checks each one's bytes. */
async function runSynthJobs(prefix: string, count: number, maxAttempts: number) {
  const created = await Promise.all(
    Array.from({ length: count }, (_, i) => jobs.createJob({ model: "abuse-synth", task: synthTask(`${prefix} ${i}`), maxAttempts })),
  );
  for (const [i, { job }] of created.entries()) {
    const done = await watchJob(jobs, job!.id);
    expect(done.error).toBe("");
    expect(done.status).toBe(JobStatus.SUCCEEDED);
    const { data } = await readOutput(jobs, job!.id, 0);
    const task = synthTask(`${prefix} ${i}`).kind.value as ImageTask;
    expect(data).toEqual(Buffer.from(syntheticImage(task, { width: 16, height: 16 }, 0)));
  }
}

describe("a half-open session", () => {
  beforeAll(async () => {
    await t.client(RegistryService).createModel({
      name: "abuse-synth",
      source: { engine: ModelEngine.SYNTHETIC, cliDefaults: { width: 16, height: 16, steps: 2 } },
    });
  });

  test("a session that sends hello and then never reads nor closes: the studio keeps serving a real worker", async () => {
    const ghost = await ghostSession("half-open-llama", [ModelEngine.LLAMA_CPP], 4);
    try {
      synthWorker("honest");
      await runSynthJobs("half-open", 4, 1);
      expect(await healthStatus(t.url)).toBe("SERVING");
      expect((await t.client(WorkerService).listWorkers({})).workers.map((w) => w.name).sort()).toEqual(["half-open-llama", "honest"]);
    } finally {
      ghost.close();
    }
  }, TEST_TIMEOUT_MS);

  // Found by this suite: placement used to offer to any connected session with a free slot, so a silent
  // session with more free slots than the real workers took every offer, each lease expired, and every
  // job failed after max_attempts without running. A session that has sent nothing for a lease TTL now
  // gets no offers until it speaks again.
  test("a silent session that claims the jobs' engine does not starve the queue", async () => {
    // Sixteen free slots against the honest worker's one: placement picks the silent session nearly always.
    const ghost = await ghostSession("half-open-synth", [ModelEngine.SYNTHETIC], 16);
    try {
      synthWorker("honest-2");
      await runSynthJobs("starved", 3, 2);
    } finally {
      ghost.close();
    }
  }, TEST_TIMEOUT_MS);
});

describe("a hello that lies about its engines", () => {
  const fileBytes = new Uint8Array([1, 2, 3, 4]);
  let files: ReturnType<typeof startFileServer>;
  beforeAll(async () => {
    files = startFileServer({ "liar.gguf": fileBytes });
    await t.client(RegistryService).createModel({
      name: "abuse-sd",
      source: {
        engine: ModelEngine.SD_CPP,
        files: [{ role: ModelFileRole.DIFFUSION_MODEL, filename: "liar.gguf", url: `${files.url}/liar.gguf`, sha256: sha256Hex(fileBytes) }],
        cliDefaults: { width: 16, height: 16, steps: 2 },
      },
    });
  });
  afterAll(() => files?.stop());

  test("claims sd-cpp but has only synthetic: it declines the sd job (never synthetic bytes); an honest sd worker then runs it", async () => {
    const before = storedOutputs();
    synthWorker("liar", [ModelEngine.SD_CPP, ModelEngine.SYNTHETIC]);
    const { job } = await jobs.createJob({ model: "abuse-sd", task: synthTask("lies"), maxAttempts: 2 });
    let offered = false;
    const declined = await watchJob(jobs, job!.id, {
      until: (j) => {
        if (j.status === JobStatus.OFFERED) offered = true;
        return offered && j.status === JobStatus.QUEUED;
      },
    });
    expect(declined.outputs).toEqual([]);
    expect(storedOutputs()).toEqual(before);

    const honest = startFaultWorker(t.url, dir, { cacheDir: join(dir, "cache-honest-sd") }, { name: "honest-sd" });
    workers.push(honest);
    const done = await watchJob(jobs, job!.id);
    expect(done.status).toBe(JobStatus.SUCCEEDED);
    expect(done.attempts).toBe(1);
    const { data } = await readOutput(jobs, job!.id, 0);
    expect(data).toEqual(Buffer.from(fakeSdImage({ prompt: "lies", seed: "3", width: 16, height: 16, index: 0 })));
    const synthetic = syntheticImage(synthTask("lies").kind.value as ImageTask, { width: 16, height: 16 }, 0);
    expect(data.equals(Buffer.from(synthetic))).toBe(false);
  }, TEST_TIMEOUT_MS);

  test("claims sd-cpp, accepts the job, then cannot run it: the job fails (after its retry) naming why, with no outputs", async () => {
    const before = storedOutputs();
    const liar = startFaultWorker(t.url, dir, { cacheDir: join(dir, "cache-liar-2") }, { name: "liar-2", sdCli: join(dir, "no-such-sd-cli") });
    workers.push(liar);
    const { job } = await jobs.createJob({ model: "abuse-sd", task: synthTask("cannot run"), maxAttempts: 2 });
    const done = await watchJob(jobs, job!.id);
    expect(done.status).toBe(JobStatus.FAILED);
    expect(done.attempts).toBeGreaterThanOrEqual(1);
    expect(done.error).toContain("no-such-sd-cli");
    expect(done.outputs).toEqual([]);
    expect(storedOutputs()).toEqual(before);
  }, TEST_TIMEOUT_MS);
});
