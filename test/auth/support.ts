import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { startStudio, type Studio } from "../../server/app.js";
import type { ServerConfigInput } from "../../server/config.js";

/** A studio on loopback, port 0, in a temp data dir that stop() removes. */
export async function startAuthStudio(config: Partial<ServerConfigInput> = {}): Promise<Studio & { dataDir: string }> {
  const dataDir = config.dataDir ?? mkdtempSync(join(tmpdir(), "studio-auth-"));
  const studio = await startStudio(
    { host: "127.0.0.1", port: 0, dataDir, logLevel: "silent", ...config },
    { logger: pino({ level: "silent" }) },
  );
  return {
    ...studio,
    dataDir,
    async stop(graceMs?: number) {
      await studio.stop(graceMs);
      if (!config.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export type Protocol = "connect" | "grpc" | "grpc-web";

/** A transport to baseUrl over HTTP/2 (or 1.1 for Connect/gRPC-Web when asked) carrying the token, if any. */
export function transportFor(
  baseUrl: string,
  token: string | undefined,
  { protocol = "connect", httpVersion = "2", ca }: { protocol?: Protocol; httpVersion?: "1.1" | "2"; ca?: string } = {},
): Transport {
  const interceptors = token
    ? [
        (next: Parameters<import("@connectrpc/connect").Interceptor>[0]) => async (req: Parameters<typeof next>[0]) => {
          req.header.set("authorization", `Bearer ${token}`);
          return next(req);
        },
      ]
    : [];
  const nodeOptions = ca ? { ca } : undefined;
  if (protocol === "grpc") return createGrpcTransport({ baseUrl, interceptors, nodeOptions });
  if (protocol === "grpc-web") return createGrpcWebTransport({ baseUrl, httpVersion, interceptors, nodeOptions });
  return createConnectTransport({ baseUrl, httpVersion, interceptors, nodeOptions });
}

/** A client of service at baseUrl with token. */
export function clientFor<T extends DescService>(service: T, baseUrl: string, token?: string, protocol: Protocol = "connect"): Client<T> {
  return createClient(service, transportFor(baseUrl, token, { protocol }));
}
