import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import * as tls from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TaskSchema } from "../../gen/studio/v1/job_pb.js";
import { JobService, type WatchJobsResponse } from "../../gen/studio/v1/job_service_pb.js";
import { TokenRole, TokenService } from "../../gen/studio/v1/token_service_pb.js";
import { startAuthStudio, transportFor } from "../auth/support.js";
import { SimWorker } from "../dispatch/sim-worker.js";
import { makeTestCert } from "../helpers/test-cert.js";

/**
 * Issue 16, item 1, against a whole studio: one address opens connections that send a byte and
 * stall. It gets its share (maxConnectionsPerAddress) and no more, every one of them is closed at
 * the headers deadline, /healthz answers other addresses throughout, and a worker's session and
 * WatchJobs streams, which sit with an open stream far longer than the idle timeout, are untouched.
 */

const ADMIN = `slow-admin-${"s".repeat(32)}`;
const CAP = 12;
const ATTACKERS = CAP + 4;
let certDir: string;
let ca: string;
beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), "studio-slow-clients-"));
  await makeTestCert(certDir);
  ca = readFileSync(join(certDir, "cert.pem"), "utf8");
});
afterAll(() => rmSync(certDir, { recursive: true, force: true }));

const opened: net.Socket[] = [];
afterEach(() => {
  for (const s of opened.splice(0)) s.destroy();
});

/**
 * A connection from localAddress; over TLS (HTTP/1.1 by ALPN) when secure. It reads and drops what
 * comes unless a test listens: an unread socket never sees its close.
 */
async function connectFrom(port: number, localAddress: string, secure: boolean): Promise<net.Socket> {
  const raw = net.connect({ port, host: "127.0.0.1", localAddress });
  raw.on("error", () => {});
  opened.push(raw);
  await new Promise<void>((ok, fail) => raw.once("connect", ok).once("error", fail));
  if (!secure) {
    raw.resume();
    return raw;
  }
  const s = tls.connect({ socket: raw, ca, servername: "localhost", ALPNProtocols: ["http/1.1"] });
  s.on("error", () => {});
  opened.push(s);
  // A connection the studio refuses (its address at the cap) ends during the handshake: returned closed.
  await new Promise<void>((ok) => s.once("secureConnect", ok).once("close", ok));
  s.resume();
  return s;
}

const closed = (s: net.Socket) => new Promise<void>((r) => (s.closed ? r() : s.once("close", () => r())));

/** GET path on a raw connection; the status line of the answer. */
function get(s: net.Socket, path: string): Promise<string> {
  const reply = new Promise<string>((r) => s.once("data", (b: Buffer) => r(b.toString("latin1").split("\r\n")[0]!)));
  s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  s.resume();
  return reply;
}

for (const secure of [false, true]) {
  describe(`slow clients (${secure ? "TLS" : "cleartext"})`, () => {
    test("one address stalling its connections cannot lock out others, and open streams outlive the idle timeout", async () => {
      const studio = await startAuthStudio({
        adminToken: ADMIN,
        headersTimeoutMs: 500,
        idleTimeoutMs: 500,
        maxConnectionsPerAddress: CAP,
        ...(secure ? { tlsCert: join(certDir, "cert.pem"), tlsKey: join(certDir, "key.pem") } : {}),
      });
      const port = studio.port;
      const nodeCa = secure ? ca : undefined;
      try {
        const admin = createClient(TokenService, transportFor(studio.url, ADMIN, { ca: nodeCa }));
        const workerToken = (await admin.createToken({ name: "slow worker", role: TokenRole.WORKER })).secret;
        // Long-lived streams from 127.0.0.1: a worker session (HTTP/2) and WatchJobs over HTTP/2 and HTTP/1.1.
        const worker = await SimWorker.connect(transportFor(studio.url, workerToken, { ca: nodeCa }));
        const watchers = (["2", "1.1"] as const).map((httpVersion) => {
          const jobs = createClient(JobService, transportFor(studio.url, ADMIN, { ca: nodeCa, httpVersion }));
          return jobs.watchJobs({})[Symbol.asyncIterator]();
        });

        // The attack, from 127.0.0.3: one byte per connection and no token.
        const attackers = await Promise.all(Array.from({ length: ATTACKERS }, () => connectFrom(port, "127.0.0.3", secure)));
        for (const s of attackers) if (!s.closed) s.write("G");
        // Another client, from 127.0.0.2, is served while the attack holds its share.
        const prober = await connectFrom(port, "127.0.0.2", secure);
        expect(await get(prober, "/healthz")).toBe("HTTP/1.1 200 OK");
        // Then every attacking connection is closed: those past the cap at once, the rest at the headers deadline.
        await Promise.all(attackers.map(closed));
        // The prober's keep-alive connection, now idle, is closed after the idle timeout...
        await closed(prober);

        // ...while the worker's session and both WatchJobs streams, idle for as long, still carry messages.
        const jobs = createClient(JobService, transportFor(studio.url, ADMIN, { ca: nodeCa }));
        const { job } = await jobs.createJob({ model: "synthetic", task: create(TaskSchema, { kind: { case: "image", value: { prompt: "slow", seed: 1n } } }) });
        const offer = await worker.nextOffer();
        expect(offer.jobId).toBe(job!.id);
        for (const w of watchers) {
          const r = await w.next();
          expect((r.value as WatchJobsResponse).job?.id).toBe(job!.id);
          await w.return?.();
        }
        expect(worker.ended).toBe(false);
        await worker.close();

        const metrics = await new Promise<string>((resolve) => {
          void connectFrom(port, "127.0.0.2", secure).then((s) => {
            let text = "";
            s.on("data", (b: Buffer) => {
              text += b.toString();
              if (text.includes("studio_connections_closed_total{reason=\"headers\"}")) resolve(text);
            });
            s.write("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
          });
        });
        const count = (reason: string) => Number(new RegExp(`studio_connections_closed_total\\{reason="${reason}"\\} (\\d+)`).exec(metrics)?.[1]);
        expect(count("max-connections-per-address")).toBe(ATTACKERS - CAP);
        expect(count("headers")).toBe(CAP);
      } finally {
        await studio.stop(500);
      }
    });
  });
}
