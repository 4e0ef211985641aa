import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** Below this no port is picked: the low ranges hold well-known services (PostgreSQL 5432, Redis 6379, 8080...). */
const LOWEST_PICK = 20_000;
/** How many random ports are tried before the OS is asked for one of its own. */
const RANDOM_TRIES = 64;
/** Ports handed out lately by this process: two children started at once never get the same one. */
const recent: number[] = [];
const RECENT_KEPT = 256;

/**
 * The kernel's ephemeral range (`ip_local_port_range`): where it draws the local port of every
 * outgoing connection. A port picked inside it and closed again can be taken by any connection
 * opened before the child binds it, which is why picks come from below it.
 */
export function ephemeralPortRange(text?: string): { low: number; high: number } | undefined {
  try {
    const [low, high] = (text ?? readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")).trim().split(/\s+/).map(Number);
    return Number.isInteger(low) && Number.isInteger(high) && low! > 0 && high! >= low! ? { low: low!, high: high! } : undefined;
  } catch {
    return undefined;
  }
}

/** Whether 127.0.0.1:port can be bound right now (0: the OS picks); resolves to the bound port, or undefined. */
function tryBind(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(undefined));
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === "object" && address ? address.port : undefined;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, for a child (llama-server, a test's studio
 * or PostgreSQL) that is told its port instead of reporting one. Picked at random below the
 * kernel's ephemeral range, so no outgoing connection can take it between this check and the
 * child's bind (inside the range that happened: "address already in use" at start-up); the OS
 * picks one only where the range leaves no room below it.
 */
export async function freePort(range = ephemeralPortRange()): Promise<number> {
  if (range && range.low - 1 > LOWEST_PICK) {
    for (let i = 0; i < RANDOM_TRIES; i++) {
      const port = LOWEST_PICK + Math.floor(Math.random() * (range.low - LOWEST_PICK));
      if (recent.includes(port)) continue;
      if ((await tryBind(port)) !== undefined) return remember(port);
    }
  }
  const port = await tryBind(0);
  if (port === undefined) throw new Error("the OS gave no free port on 127.0.0.1");
  return remember(port);
}

function remember(port: number): number {
  recent.push(port);
  if (recent.length > RECENT_KEPT) recent.shift();
  return port;
}
