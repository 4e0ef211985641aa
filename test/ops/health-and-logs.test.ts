import { sqliteOf } from "../helpers/test-studio.js";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { HealthService, NOT_SERVING, SERVING } from "../../server/ops/grpc-health.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { TaskSchema } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import { startStudio, type Studio } from "../../server/app.js";
import type { DispatchModule } from "../../server/dispatch/index.js";

const ADMIN = `health-admin-${"h".repeat(32)}`;
let dir: string;
let studio: Studio;
const logLines: Array<Record<string, unknown>> = [];
const logText: string[] = [];

function transport(secret?: string) {
  const auth: Interceptor = (next) => async (req) => {
    if (secret) req.header.set("authorization", `Bearer ${secret}`);
    req.header.set("x-request-id", "test-req-1");
    return next(req);
  };
  return createConnectTransport({ baseUrl: studio.url, httpVersion: "1.1", interceptors: [auth] });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "studio-ops-"));
  const logger = pino(
    { level: "debug", redact: { paths: ["token", "secret", "authorization", "*.authorization"], censor: "[redacted]" } },
    { write: (s: string) => (logText.push(s), logLines.push(JSON.parse(s))) },
  );
  studio = await startStudio({ host: "127.0.0.1", port: 0, dataDir: dir, adminToken: ADMIN }, { logger });
});
afterAll(async () => {
  await studio.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("health", () => {
  test("/healthz and /readyz answer without a token while auth is on", async () => {
    expect((await fetch(`${studio.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${studio.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready" });
    expect((await fetch(`${studio.url}/metrics`)).status).toBe(200);
  });

  test("/readyz is 503 with the reason when the database refuses writes, and recovers", async () => {
    sqliteOf(studio).exec("PRAGMA query_only = ON");
    try {
      const res = await fetch(`${studio.url}/readyz`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { problem: string }).problem).toContain("database");
      expect((await fetch(`${studio.url}/healthz`)).status).toBe(200);
    } finally {
      sqliteOf(studio).exec("PRAGMA query_only = OFF");
    }
    expect((await fetch(`${studio.url}/readyz`)).status).toBe(200);
    const probes = sqliteOf(studio).query("SELECT count(*) AS n FROM apiTokens WHERE id = 'readyz-probe'").get() as { n: number };
    expect(probes.n).toBe(0);
  });
});

describe("grpc.health.v1", () => {
  test("Check and Watch answer over gRPC without a token; NOT_SERVING while the database refuses writes", async () => {
    const health = createClient(HealthService, createGrpcTransport({ baseUrl: studio.url })) as unknown as {
      check(req: { service: string }): Promise<{ status: number }>;
      watch(req: { service: string }, opts: { signal: AbortSignal }): AsyncIterable<{ status: number }>;
    };
    expect((await health.check({ service: "" })).status).toBe(SERVING);
    expect((await health.check({ service: "studio.v1.JobService" })).status).toBe(SERVING);
    const unknown = await health.check({ service: "nope.v1.Nothing" }).catch((e) => ConnectError.from(e).code);
    expect(unknown).toBe(Code.NotFound);
    sqliteOf(studio).exec("PRAGMA query_only = ON");
    try {
      expect((await health.check({ service: "" })).status).toBe(NOT_SERVING);
    } finally {
      sqliteOf(studio).exec("PRAGMA query_only = OFF");
    }
    const abort = new AbortController();
    let first: number | undefined;
    for await (const res of health.watch({ service: "" }, { signal: abort.signal })) {
      first = res.status;
      break;
    }
    expect(first).toBe(SERVING);
  });
});

describe("output downloads need a reader token", () => {
  test("401 without a token, 403 for a worker token, the bytes for a client token", async () => {
    const admin = createClient(TokenService, transport(ADMIN));
    const client = (await admin.createToken({ name: "reader", role: TokenRole.CLIENT })).secret;
    const worker = (await admin.createToken({ name: "not a reader", role: TokenRole.WORKER })).secret;
    const jobs = createClient(JobService, transport(client));
    const { job } = await jobs.createJob({ model: "synthetic", task: create(TaskSchema, { kind: { case: "image", value: { prompt: "x" } } }) });
    const url = `${studio.url}/jobs/${job!.id}/outputs/0`;
    const anon = await fetch(url);
    expect(anon.status).toBe(401);
    expect(anon.headers.get("www-authenticate")).toContain("Bearer");
    expect((await fetch(url, { headers: { authorization: `Bearer ${worker}` } })).status).toBe(403);
    // Past the guard, the route itself answers: the job has no output yet.
    expect((await fetch(url, { headers: { authorization: `Bearer ${client}` } })).status).toBe(404);
    expect(studio.modules.find((m) => m.name === "dispatch") as DispatchModule).toBeDefined();
  });
});

describe("request log", () => {
  test("one line per RPC with request id, method, code, duration and caller name; never a token", async () => {
    const admin = createClient(TokenService, transport(ADMIN));
    const created = await admin.createToken({ name: "logged", role: TokenRole.CLIENT });
    const refused = await createClient(TokenService, transport(created.secret))
      .listTokens({})
      .catch((e) => ConnectError.from(e).code);
    expect(refused).toBe(Code.PermissionDenied);
    await createClient(JobService, transport()).listJobs({}).catch(() => {});

    const rpcs = logLines.filter((l) => l.rpc !== undefined);
    const ok = rpcs.find((l) => l.rpc === "TokenService/CreateToken")!;
    expect(ok).toMatchObject({ requestId: "test-req-1", code: "ok", caller: "admin (--admin-token)", role: "admin" });
    expect(typeof ok.ms).toBe("number");
    expect(rpcs.find((l) => l.rpc === "TokenService/ListTokens")).toMatchObject({ code: "permission_denied", caller: "logged" });
    expect(rpcs.find((l) => l.rpc === "JobService/ListJobs")).toMatchObject({ code: "unauthenticated", caller: null });
    const all = logText.join("");
    expect(all).not.toContain(created.secret);
    expect(all).not.toContain(ADMIN);
  });
});
