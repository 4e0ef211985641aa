import * as net from "node:net";

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: for programs (redis-server) that cannot
 * listen on port 0 and report the port back. The tiny race is acceptable in a benchmark.
 */
export async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolves once something accepts TCP connections on host:port, or rejects after timeoutMs. */
export async function waitForPort(port: number, { host = "127.0.0.1", timeoutMs = 10_000 } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, host);
      socket.once("connect", () => {
        // Connecting to a port nobody listens on yet can draw that same port as our own local port:
        // TCP then connects the socket to itself (and holds the port the server is about to bind).
        const selfConnected = socket.localPort === port && socket.localAddress === socket.remoteAddress;
        socket.destroy();
        resolve(!selfConnected);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listened on ${host}:${port} within ${timeoutMs} ms`);
    await Bun.sleep(25);
  }
}
