import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JobStatus, type Task } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { WorkerProcess, buildWorkerBinary, removeWorkerBinary, watchJob } from "./worker-harness.js";
import { makeTestCert } from "../helpers/test-cert.js";

/** Explicit: real processes on a loaded 2-core machine can take longer than bun's 5 s default. */
const TEST_TIMEOUT_MS = 30_000;
const HOOK_TIMEOUT_MS = 60_000;

/** The compiled worker against an https:// studio that requires tokens: --ca-file and --token. */
const ADMIN = "admin-token-for-the-worker-tls-e2e-test-0123";
let dir: string;
let t: TestStudio;


beforeAll(async () => {
  buildWorkerBinary();
  dir = mkdtempSync(join(tmpdir(), "worker-tls-"));
  await makeTestCert(dir);
  t = await startTestStudio({ adminToken: ADMIN, tlsCert: join(dir, "cert.pem"), tlsKey: join(dir, "key.pem") });
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await t?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  removeWorkerBinary();
}, HOOK_TIMEOUT_MS);

const args = (name: string, extra: string[]) => [
  "--server", t.url, "--name", name, "--engines", "synthetic", "--progress", "log",
  "--cache-dir", join(dir, "cache"), "--work-dir", join(dir, "work"), ...extra,
];

describe("the compiled worker over https", () => {
  test("with --ca-file and a worker token it connects and runs a job", async () => {
    const { createConnectTransport } = await import("@connectrpc/connect-node");
    const { readFileSync } = await import("node:fs");
    const transport = createConnectTransport({
      baseUrl: t.url,
      httpVersion: "1.1",
      nodeOptions: { ca: readFileSync(join(dir, "cert.pem")) },
      interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN}`), next(req))],
    });
    const { secret } = await t.client(TokenService, transport).createToken({ name: "tls-worker", role: TokenRole.WORKER });
    await t.client(RegistryService, transport).createModel({
      name: "tls-synth",
      source: { engine: ModelEngine.SYNTHETIC, files: [], cliDefaults: { width: 32, height: 32, steps: 2 } },
    });
    const w = new WorkerProcess(args("tls-worker", ["--ca-file", join(dir, "cert.pem"), "--token", secret]));
    try {
      await w.waitForLine((l) => l.msg === "connected to the studio");
      const jobs = t.client(JobService, transport);
      const { job } = await jobs.createJob({ model: "tls-synth", task: { kind: { case: "image", value: { prompt: "tls" } } } as Task });
      expect((await watchJob(jobs, job!.id)).status).toBe(JobStatus.SUCCEEDED);
      expect(w.lines.some((l) => JSON.stringify(l).includes(secret))).toBe(false);
      w.proc.kill("SIGTERM");
      expect(await w.exited).toBe(0);
    } finally {
      w.proc.kill("SIGKILL");
      await w.exited;
    }
  }, TEST_TIMEOUT_MS);

  test("a wrong token stops the worker with exit 1 and says so", async () => {
    const w = new WorkerProcess(args("bad-token", ["--ca-file", join(dir, "cert.pem"), "--token", "wrong"]));
    expect(await w.exited).toBe(1);
    const fatal = w.lines.find((l) => l.level === 60)!;
    expect(fatal.msg).toBe("the studio refused this worker; check --token");
  }, TEST_TIMEOUT_MS);

  test("without the CA the certificate is not trusted and the worker keeps retrying", async () => {
    const w = new WorkerProcess(args("no-ca", ["--token", "whatever"]));
    try {
      const line = await w.waitForLine((l) => l.msg === "session to the studio ended; reconnecting");
      expect(String(line.err)).toMatch(/certificate|self.signed|verify/i);
    } finally {
      w.proc.kill("SIGKILL");
      await w.exited;
    }
  }, TEST_TIMEOUT_MS);

  test("--ca-file with an http:// studio is refused at start-up", async () => {
    const w = new WorkerProcess(["--server", "http://127.0.0.1:1", "--engines", "synthetic", "--ca-file", join(dir, "cert.pem")]);
    expect(await w.exited).toBe(2);
    expect(w.stderr.join("\n")).toContain("--ca-file is only for an https:// --server");
  }, TEST_TIMEOUT_MS);
});
