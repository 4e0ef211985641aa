import * as net from "node:net";
import { freePort } from "../../worker/engines/free-port.js";

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: for programs (redis-server) that cannot
 * listen on port 0 and report the port back. Picked below the ephemeral range (freePort), yet
 * another program may still bind it first; start such programs through onPickedPorts.
 */
export const freeLoopbackPort = (): Promise<number> => freePort();

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

/** A program stopped at start-up because a port picked for it was taken before it bound it. */
export class PortTaken extends Error {}

/** How many picks before a program that keeps finding its port taken is given up on. */
const PORT_PICKS = 3;

/**
 * Starts a program on ports picked here (`start` picks them, as many as it needs), again on new
 * picks when it throws PortTaken: between the pick and the program's bind another socket may take
 * a port (an outbound connection draws its local port from the same range). Any other error, or
 * the last pick's, is thrown.
 */
export async function onPickedPorts<T>(what: string, start: () => Promise<T>, picks = PORT_PICKS): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (!(err instanceof PortTaken) || attempt === picks) throw err;
      console.error(`${what}: ${err.message}; starting it again on another port`);
    }
  }
}
