import { afterEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import http2 from "node:http2";
import * as net from "node:net";
import { TaskSchema } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import { isLoopbackAuthority } from "../../server/auth/host-check.js";
import { HealthService } from "../../server/ops/grpc-health.js";
import { envelope } from "../abuse/raw-h2.js";
import { SimWorker } from "../dispatch/sim-worker.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { transportFor } from "./support.js";

/**
 * Issue 16, items 3, 4 and 11: the open studio (loopback, no tokens). Streams opened without a
 * token end when the first token turns auth on; while open, only loopback Host names are served
 * (DNS rebinding); anonymous health streams are bounded per address, not in one shared bucket.
 */

let t: TestStudio | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

const task = (prompt: string) => create(TaskSchema, { kind: { case: "image", value: { prompt, seed: 1n } } });

const codeOf = (p: Promise<unknown>) => p.then(() => "ok", (e: unknown) => Code[ConnectError.from(e).code]);

/** A raw HTTP/1.1 request with the given Host header; the status line and the body. */
function rawRequest(port: number, head: string, body = ""): Promise<{ status: string; body: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    let text = "";
    s.on("error", reject);
    s.on("data", (b: Buffer) => {
      text += b.toString("utf8");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return;
      const length = Number(/content-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? -1);
      if (length >= 0 && Buffer.byteLength(text.slice(end + 4)) < length) return;
      s.destroy();
      resolve({ status: text.split("\r\n")[0]!, body: text.slice(end + 4) });
    });
    s.write(`${head}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
}

const createTokenAs = (port: number, host: string) =>
  rawRequest(
    port,
    `POST /studio.v1.TokenService/CreateToken HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nConnect-Protocol-Version: 1`,
    JSON.stringify({ name: "owner", role: "TOKEN_ROLE_ADMIN" }),
  );

describe("auth turning on ends what anonymous callers hold open (item 3)", () => {
  test("a WatchJobs stream and a worker session opened while open end with UNAUTHENTICATED once the first admin token exists", async () => {
    t = await startTestStudio();
    const anonymous = createConnectTransport({ baseUrl: t.url, httpVersion: "2" });
    const watch = createClient(JobService, anonymous).watchJobs({})[Symbol.asyncIterator]();
    const first = await codeOf(createClient(JobService, anonymous).createJob({ model: "synthetic", task: task("before") }));
    expect(first).toBe("ok");
    expect((await watch.next()).value?.job).toBeDefined();
    const worker = await SimWorker.connect(anonymous);
    await worker.nextOffer();

    const { secret } = await createClient(TokenService, anonymous).createToken({ name: "owner", role: TokenRole.ADMIN });

    // Changes sent before the switch may still be in flight; then the stream ends.
    let ended: string | undefined;
    for (let i = 0; i < 10 && ended === undefined; i++) {
      const r = await codeOf(watch.next().then((x) => {
        if (x.done) throw new Error("ended without an error");
      }));
      if (r !== "ok") ended = r;
    }
    expect(ended).toBe("Unauthenticated");
    await worker.done;
    expect(worker.ended).toBe(true);
    expect(ConnectError.from(worker.error).code).toBe(Code.Unauthenticated);
    expect(ConnectError.from(worker.error).message).toContain("auth was turned on");
    // Nothing anonymous is let in afterwards, and prompts reach only token holders.
    expect(await codeOf(createClient(JobService, anonymous).listJobs({}))).toBe("Unauthenticated");
    const jobs = createClient(JobService, transportFor(t.url, secret));
    await jobs.createJob({ model: "synthetic", task: task("after") });
    expect(worker.pending().filter((m) => m.case === "offer")).toHaveLength(0);
  });
});

describe("DNS rebinding in open mode (item 4)", () => {
  test("a foreign Host cannot create the first token (or read anything); loopback names can", async () => {
    t = await startTestStudio();
    const port = t.studio.port;
    const rebound = await createTokenAs(port, "rebind.attacker.example");
    expect(rebound.status).toBe("HTTP/1.1 403 Forbidden");
    expect(JSON.parse(rebound.body)).toMatchObject({ code: "permission_denied" });
    expect(JSON.parse(rebound.body).message).toContain("loopback host name");
    for (const path of ["/", "/healthz", "/metrics", "/jobs/x/outputs/0"]) {
      const res = await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: rebind.attacker.example:${port}`);
      expect(`${path} ${res.status}`).toBe(`${path} HTTP/1.1 403 Forbidden`);
    }
    // HTTP/2 with a foreign :authority is refused too (HTTP 403 is PERMISSION_DENIED to gRPC clients).
    const session = http2.connect(t.url);
    try {
      const status = await new Promise<unknown>((resolve, reject) => {
        const req = session.request({ ":method": "POST", ":path": "/studio.v1.JobService/ListJobs", ":authority": "rebind.attacker.example", "content-type": "application/grpc", te: "trailers" });
        req.on("response", (h) => resolve(h[":status"]));
        req.on("error", reject);
        req.end(envelope(0, 0));
      });
      expect(status).toBe(403);
    } finally {
      session.close();
    }
    // Still open: the attacker made no token.
    expect(await codeOf(createClient(JobService, t.connectTransport()).listJobs({}))).toBe("ok");
    const ok = await createTokenAs(port, `localhost:${port}`);
    expect(ok.status).toBe("HTTP/1.1 200 OK");
    expect(JSON.parse(ok.body).secret).toStartWith("stu_");
  });

  test("with tokens, other Host names are served (reverse proxies keep working)", async () => {
    t = await startTestStudio({ adminToken: `proxy-admin-${"p".repeat(32)}` });
    const res = await rawRequest(t.studio.port, `GET /healthz HTTP/1.1\r\nHost: studio.example.com`);
    expect(res.status).toBe("HTTP/1.1 200 OK");
  });

  test("isLoopbackAuthority: localhost, 127/8 and [::1], with or without a port; nothing else", () => {
    for (const ok of ["localhost", "LOCALHOST:8080", "127.0.0.1", "127.0.0.1:80", "127.1.2.3:65535", "[::1]", "[::1]:8080", "localhost."])
      expect(`${ok} ${isLoopbackAuthority(ok)}`).toBe(`${ok} true`);
    for (const bad of ["rebind.attacker.example", "127.0.0.1.nip.io", "localhost.attacker.example", "127.0.0.256", "[::2]", "[::1]x", "localhost:x", "0.0.0.0", "", "::1"])
      expect(`${bad} ${isLoopbackAuthority(bad)}`).toBe(`${bad} false`);
  });
});

describe("anonymous health streams per address (item 11)", () => {
  test("one address holding every Health/Watch stream it may does not stop another address from watching", async () => {
    t = await startTestStudio({ maxWatchStreamsPerToken: 2 });
    const health = (localAddress: string) =>
      createClient(HealthService, createConnectTransport({ baseUrl: t!.url, httpVersion: "1.1", nodeOptions: { localAddress } })) as unknown as {
        watch(req: { service: string }, opts: { signal: AbortSignal }): AsyncIterable<{ status: number }>;
      };
    const abort = new AbortController();
    const open = (localAddress: string) => health(localAddress).watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator]();
    try {
      const held = [open("127.0.0.1"), open("127.0.0.1")];
      for (const s of held) expect((await s.next()).value?.status).toBe(1);
      expect(await codeOf(open("127.0.0.1").next())).toBe("ResourceExhausted");
      expect((await open("127.0.0.2").next()).value?.status).toBe(1);
    } finally {
      abort.abort();
    }
  });
});
