import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Client } from "@connectrpc/connect";
import { JobStatus, type Job, type Task } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import { readLines } from "../helpers/read-lines.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";

/**
 * Issue 17: the contract as another language sees it. examples/python's streaming and polling
 * workers, generated from proto/ by Debian's protoc and gRPC plugin (examples/python/generate.sh)
 * and run by Debian's python3 with python3-grpcio, serve real jobs of a real studio over gRPC,
 * with a worker token. `bun run test` installs those packages (scripts/system-deps.sh).
 */
const REPO = resolve(import.meta.dir, "../..");
const EXAMPLES = join(REPO, "examples/python");
const PYTHON = "/usr/bin/python3";
const ADMIN = "python-example-test-admin-token-0123456789";
const TTL = 1000;
const MiB = 1024 * 1024;

let t: TestStudio;
let dir: string;
let jobs: Client<typeof JobService>;
let workerToken: string;

interface PyWorker {
  proc: ReturnType<typeof Bun.spawn>;
  lines: Array<Record<string, unknown>>;
  stderr: Promise<string>;
  /** The first line (seen or coming) with this event. */
  next(event: string): Promise<Record<string, unknown>>;
}

function startPython(script: string, args: string[]): PyWorker {
  const proc = Bun.spawn([PYTHON, join(EXAMPLES, script), "--server", t.url, ...args], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", PYTHONPATH: `${join(dir, "gen")}:${EXAMPLES}`, STUDIO_TOKEN: workerToken },
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ event: string; resolve: (l: Record<string, unknown>) => void }> = [];
  void (async () => {
    for await (const line of readLines(proc.stdout as ReadableStream<Uint8Array>)) {
      const obj = JSON.parse(line) as Record<string, unknown>;
      lines.push(obj);
      for (const w of waiters.filter((x) => x.event === obj.event)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(obj);
      }
    }
  })();
  return {
    proc,
    lines,
    stderr: new Response(proc.stderr as ReadableStream<Uint8Array>).text(),
    next: (event) => {
      const seen = lines.find((l) => l.event === event);
      return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ event, resolve }));
    },
  };
}

async function finished(jobId: string): Promise<Job> {
  for await (const res of jobs.watchJobs({ jobIds: [jobId], includeSnapshot: true }))
    if (res.job && [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED].includes(res.job.status)) return res.job;
  throw new Error(`watch of ${jobId} ended`);
}

async function output(jobId: string, index: number): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const res of jobs.getJobOutput({ jobId, index })) parts.push(res.chunk);
  return Buffer.concat(parts);
}

const image = (prompt: string, extra: Record<string, unknown> = {}) => ({ kind: { case: "image", value: { prompt, ...extra } } }) as Task;
const text = (prompt: string) => ({ kind: { case: "text", value: { prompt } } }) as Task;
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "python-example-"));
  const gen = Bun.spawnSync(["bash", join(EXAMPLES, "generate.sh"), join(dir, "gen")], { stdout: "pipe", stderr: "pipe" });
  if (gen.exitCode !== 0) throw new Error(`examples/python/generate.sh failed: ${gen.stderr.toString()}`);
  t = await startTestStudio({ adminToken: ADMIN, leaseTtlMs: TTL, heartbeatIntervalMs: 400, maxOutputBytes: 64 * MiB });
  const admin = t.connectTransport({ headers: { authorization: `Bearer ${ADMIN}` } });
  jobs = t.client(JobService, admin);
  workerToken = (await t.client(TokenService, admin).createToken({ name: "python", role: TokenRole.WORKER })).secret;
  await t.client(RegistryService, admin).createModel({
    name: "py-synth",
    source: { engine: ModelEngine.SYNTHETIC, files: [], cliDefaults: { width: 64, height: 48 } },
  });
}, 60_000);

afterAll(async () => {
  await t?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("examples/python against a real studio", () => {
  test("the streaming worker, idle past the lease TTL, still gets jobs; serves images and text; drains and exits 0", async () => {
    const w = startPython("streaming_worker.py", ["--name", "py-stream", "--jobs", "3"]);
    try {
      const connected = await w.next("connected");
      expect(connected).toMatchObject({ lease_ttl_ms: TTL });
      // Idle and silent (it holds no lease, so it owes no heartbeat) for two lease TTLs: still a worker to offer to.
      await Bun.sleep(2 * TTL);
      const created = await Promise.all([
        jobs.createJob({ model: "py-synth", task: image("two foxes", { batchCount: 2 }) }),
        jobs.createJob({ model: "py-synth", task: image("a bigger fox", { overrides: { width: 512, height: 512 } }) }),
        jobs.createJob({ model: "py-synth", task: text("hello there") }),
      ]);
      const [pair, big, chat] = await Promise.all(created.map(({ job }) => finished(job!.id)));
      for (const j of [pair, big, chat]) expect({ id: j!.id, status: j!.status, error: j!.error }).toEqual({ id: j!.id, status: JobStatus.SUCCEEDED, error: "" });
      expect(pair!.outputs.map((o) => o.mimeType)).toEqual(["image/png", "image/png"]);
      expect((await output(pair!.id, 1)).subarray(0, 8).equals(PNG)).toBe(true);
      // 512 x 512 RGB noise: about 768 KiB, a single chunk; the text job one JSON document.
      expect(Number(big!.outputs[0]!.sizeBytes)).toBeGreaterThan(700 * 1024);
      expect(JSON.parse((await output(chat!.id, 0)).toString())).toMatchObject({ text: "echo: hello there", finishReason: "stop" });
      expect(await w.proc.exited).toBe(0);
      expect(w.lines.filter((l) => l.event === "completed").map((l) => l.job_id).sort()).toEqual([pair!.id, big!.id, chat!.id].sort());
    } finally {
      w.proc.kill();
      await w.proc.exited;
    }
  }, 60_000);

  test("the polling worker uploads a 3 MiB output in chunks with CompleteJobStream, and a text output; exits 0", async () => {
    const { job: bigJob } = await jobs.createJob({ model: "py-synth", task: image("a large fox", { overrides: { width: 1024, height: 1024 } }) });
    const { job: textJob } = await jobs.createJob({ model: "py-synth", task: text("and a word") });
    const w = startPython("polling_worker.py", ["--name", "py-poll", "--jobs", "2"]);
    try {
      const big = await finished(bigJob!.id);
      const chat = await finished(textJob!.id);
      expect([big.status, big.error, chat.status, chat.error]).toEqual([JobStatus.SUCCEEDED, "", JobStatus.SUCCEEDED, ""]);
      const bytes = await output(big.id, 0);
      expect(bytes.byteLength).toBeGreaterThan(3 * MiB);
      expect(bytes.subarray(0, 8).equals(PNG)).toBe(true);
      expect(new Bun.CryptoHasher("sha256").update(bytes).digest("hex")).toBe(big.outputs[0]!.sha256);
      expect(JSON.parse((await output(chat.id, 0)).toString()).text).toBe("echo: and a word");
      expect(await w.proc.exited).toBe(0);
      expect(await w.stderr).toBe("");
    } finally {
      w.proc.kill();
      await w.proc.exited;
    }
  }, 60_000);
});
