import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Database } from "bun:sqlite";
import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { startStudio, type Studio } from "../../server/app.js";
import type { ServerConfigInput } from "../../server/config.js";
import type { StudioTuning } from "../../server/context.js";
import { createLogger } from "../../server/log.js";

/** A studio started for one test: port 0, a fresh temp data dir, a silent log. */
export interface TestStudio {
  studio: Studio;
  /** http://127.0.0.1:port */
  url: string;
  dataDir: string;
  /** Connect protocol (JSON unless binary) over HTTP/1.1. */
  connectTransport(opts?: { binary?: boolean; headers?: Record<string, string> }): Transport;
  /** gRPC-Web over HTTP/1.1. */
  grpcWebTransport(opts?: { binary?: boolean; headers?: Record<string, string> }): Transport;
  /** gRPC over HTTP/2 cleartext (prior knowledge). */
  grpcTransport(opts?: { headers?: Record<string, string> }): Transport;
  /** A client over the Connect JSON transport unless one is given. */
  client<S extends DescService>(service: S, transport?: Transport): Client<S>;
  /** Stops the studio and removes the data dir (unless keepDataDir). Safe to call twice. */
  stop(opts?: { keepDataDir?: boolean }): Promise<void>;
}

/**
 * Starts a studio for a test on 127.0.0.1:0 in a new temp data dir (or overrides.dataDir),
 * with a silent logger. Always `await t.stop()` in afterEach/afterAll.
 */
export async function startTestStudio(
  overrides: Partial<ServerConfigInput> = {},
  {
    now,
    tuning,
    ownsDataDir = overrides.dataDir === undefined,
  }: {
    now?: () => number;
    tuning?: StudioTuning;
    /** Remove the data dir on stop; default only when this call made it. A restart on a kept dir passes true. */
    ownsDataDir?: boolean;
  } = {},
): Promise<TestStudio> {
  const dataDir = overrides.dataDir ?? mkdtempSync(join(tmpdir(), "studio-test-"));
  const studio = await startStudio(
    { host: "127.0.0.1", port: 0, logLevel: "silent", ...overrides, dataDir },
    { logger: createLogger(process.env.TEST_STUDIO_LOG ?? "silent", { pretty: false }), now, tuning },
  );
  const withHeaders = (headers?: Record<string, string>): Interceptor[] =>
    headers
      ? [
          (next) => async (req) => {
            for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
            return next(req);
          },
        ]
      : [];
  const connectTransport = ({ binary = false, headers }: { binary?: boolean; headers?: Record<string, string> } = {}) =>
    createConnectTransport({ baseUrl: studio.url, httpVersion: "1.1", useBinaryFormat: binary, interceptors: withHeaders(headers) });
  let stopped: Promise<void> | undefined;
  return {
    studio,
    url: studio.url,
    dataDir,
    connectTransport,
    grpcWebTransport: ({ binary = true, headers } = {}) =>
      createGrpcWebTransport({ baseUrl: studio.url, httpVersion: "1.1", useBinaryFormat: binary, interceptors: withHeaders(headers) }),
    grpcTransport: ({ headers } = {}) =>
      createGrpcTransport({ baseUrl: studio.url, interceptors: withHeaders(headers) }),
    client(service, transport) {
      return createClient(service, transport ?? connectTransport());
    },
    stop({ keepDataDir = false } = {}) {
      stopped ??= (async () => {
        await studio.stop(1000);
        if (!keepDataDir && ownsDataDir) rmSync(dataDir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/** The raw bun:sqlite handle of a studio on SQLite, for tests that read or poke the file directly. */
export function sqliteOf(studio: Studio): Database {
  const db = studio.ctx.storage.sqlite;
  if (!db) throw new Error("this studio runs on PostgreSQL, not SQLite");
  return db.sqlite;
}
