import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createClient } from "@connectrpc/connect";
import http2 from "node:http2";
import * as net from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import { startStudio, type Studio } from "../../server/app.js";
import { transportFor } from "../auth/support.js";
import { envelope } from "./raw-h2.js";

/**
 * Issue 16, item 2: the bearer token is checked from the headers, before any body is read. Every
 * request here announces a large body and sends only its first bytes, then waits: the refusal must
 * come anyway. Before the fix a unary body was read to its end (up to 8 MiB) and parsed first, so
 * these calls hung until the body came.
 */

const ADMIN = `body-admin-${"b".repeat(32)}`;
const BIG = 8 * 1024 * 1024;
let dir: string;
let studio: Studio;
let workerToken: string;
const logLines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "studio-body-"));
  const logger = pino({ level: "info" }, { write: (line: string) => void logLines.push(JSON.parse(line)) });
  studio = await startStudio({ host: "127.0.0.1", port: 0, dataDir: dir, adminToken: ADMIN, headersTimeoutMs: 1000 }, { logger });
  const admin = createClient(TokenService, transportFor(studio.url, ADMIN));
  workerToken = (await admin.createToken({ name: "a worker", role: TokenRole.WORKER })).secret;
});
afterAll(async () => {
  await studio.stop(500);
  rmSync(dir, { recursive: true, force: true });
});

/**
 * An HTTP/1.1 POST whose head promises BIG bytes of body and which then sends only `first`:
 * resolves with the status line and the body of the answer (as far as Content-Length says).
 */
function h1Stalled(path: string, contentType: string, first: Uint8Array, token?: string): Promise<{ status: string; body: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(studio.port, "127.0.0.1");
    let text = "";
    s.on("error", reject);
    s.on("data", (b: Buffer) => {
      text += b.toString("latin1");
      const head = text.indexOf("\r\n\r\n");
      if (head < 0) return;
      const length = Number(/content-length: (\d+)/i.exec(text.slice(0, head))?.[1] ?? 0);
      if (text.length - head - 4 < length) return;
      s.destroy();
      resolve({ status: text.split("\r\n")[0]!, body: text.slice(head + 4, head + 4 + length) });
    });
    s.write(
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${contentType}\r\nConnect-Protocol-Version: 1\r\n` +
        (token ? `Authorization: Bearer ${token}\r\n` : "") +
        `Content-Length: ${BIG}\r\n\r\n`,
    );
    s.write(first);
  });
}

/** An HTTP/2 gRPC call that sends an envelope header promising BIG bytes and 1 KiB of them, and never ends its stream. */
function h2Stalled(path: string, token?: string): Promise<{ grpcStatus?: string; grpcMessage?: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(studio.url);
    session.on("error", reject);
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    });
    const result: { grpcStatus?: string; grpcMessage?: string } = {};
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) result.grpcStatus = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) result.grpcMessage = decodeURIComponent(String(h["grpc-message"]));
    };
    req.on("response", take);
    req.on("trailers", take);
    req.on("error", () => {});
    req.resume();
    req.on("close", () => {
      session.destroy();
      resolve(result);
    });
    req.write(envelope(0, BIG - 5, new Uint8Array(1024)));
  });
}

describe("auth before the body", () => {
  test("Connect unary over HTTP/1.1: no token is 401 unauthenticated without the body being sent", async () => {
    const res = await h1Stalled("/studio.v1.WorkerService/Heartbeat", "application/json", new TextEncoder().encode('{"leaseIds":["'));
    expect(res.status).toBe("HTTP/1.1 401 Unauthorized");
    expect(JSON.parse(res.body)).toMatchObject({ code: "unauthenticated" });
  });

  test("a wrong role is refused the same way (403 permission_denied), the body still unread", async () => {
    const res = await h1Stalled("/studio.v1.TokenService/ListTokens", "application/proto", new Uint8Array(100), workerToken);
    expect(res.status).toBe("HTTP/1.1 403 Forbidden");
    expect(JSON.parse(res.body)).toMatchObject({ code: "permission_denied" });
  });

  test("gRPC-Web over HTTP/1.1 and gRPC over HTTP/2 are refused before their messages arrive", async () => {
    const web = await h1Stalled("/studio.v1.WorkerService/Heartbeat", "application/grpc-web+proto", envelope(0, BIG - 5, new Uint8Array(64)));
    expect(web.status).toBe("HTTP/1.1 200 OK");
    const grpc = await h2Stalled("/studio.v1.WorkerService/CompleteJob");
    expect(grpc.grpcStatus).toBe("16");
    expect(grpc.grpcMessage).toContain("bearer token");
    const stream = await h2Stalled("/studio.v1.WorkerService/Session");
    expect(stream.grpcStatus).toBe("16");
    const wrongRole = await h2Stalled("/studio.v1.RegistryService/CreateModel", workerToken);
    expect(wrongRole.grpcStatus).toBe("7");
  });

  test("eight callers sending 8 MiB bodies without a token are each refused at once, and each refusal is logged", async () => {
    const before = logLines.length;
    const refused = await Promise.all(
      Array.from({ length: 8 }, () => h1Stalled("/studio.v1.WorkerService/Heartbeat", "application/proto", new Uint8Array(64 * 1024))),
    );
    expect(refused.map((r) => r.status)).toEqual(Array(8).fill("HTTP/1.1 401 Unauthorized"));
    const lines = logLines.slice(before).filter((l) => l.rpc === "WorkerService/Heartbeat");
    expect(lines).toHaveLength(8);
    expect(lines[0]).toMatchObject({ code: "unauthenticated", caller: null, msg: "rpc refused" });
    expect(typeof lines[0]!.requestId).toBe("string");
  });

  test("a small or chunked body is drained (nothing parsed) and the connection kept; one left unfinished is cut after the grace", async () => {
    const s = net.connect(studio.port, "127.0.0.1");
    const replies: string[] = [];
    let buffered = "";
    s.on("data", (b: Buffer) => {
      buffered += b.toString("latin1");
      for (let m; (m = /^HTTP\/1\.1 (\d{3})[^]*?\r\n\r\n/.exec(buffered)); ) {
        const length = Number(/content-length: (\d+)/i.exec(m[0])?.[1] ?? 0);
        if (buffered.length < m[0].length + length) break;
        replies.push(m[1]!);
        buffered = buffered.slice(m[0].length + length);
      }
    });
    const closed = new Promise<void>((r) => s.once("close", () => r()));
    const post = (body: string) =>
      s.write(
        `POST /studio.v1.JobService/ListJobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          `Connect-Protocol-Version: 1\r\nTransfer-Encoding: chunked\r\n\r\n${body}`,
      );
    const answered = async (n: number) => {
      while (replies.length < n) await new Promise<void>((r) => s.once("data", () => r()));
    };
    post("2\r\n{}\r\n0\r\n\r\n");
    await answered(1);
    // Same connection, a second refused call whose chunked body never ends: cut after the grace (1 s here).
    post("1\r\n{\r\n");
    const t0 = performance.now();
    await closed;
    expect(replies).toEqual(["401"]);
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  test("the studio still answers a token holder's full request after all that", async () => {
    const health = await fetch(`${studio.url}/healthz`);
    expect(health.status).toBe(200);
    const tokens = await createClient(TokenService, transportFor(studio.url, ADMIN)).listTokens({});
    expect(tokens.tokens.length).toBeGreaterThanOrEqual(2);
  });
});
