import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";

/**
 * The transport a worker talks to the studio on: Connect over HTTP/2 with binary protobuf (a
 * fraction of JSON's encoding cost on both ends), and HTTP/2 PINGs so that a dead connection is
 * noticed. The benchmarks' simulated workers use this too, so they measure what workers send.
 */
export function createWorkerTransport(server: string, { ca }: { ca?: string | Buffer } = {}): Transport {
  return createConnectTransport({
    baseUrl: server,
    httpVersion: "2",
    useBinaryFormat: true,
    pingIntervalMs: 15_000,
    ...(ca ? { nodeOptions: { ca } } : {}),
  });
}
