import * as net from "node:net";

/**
 * Why the studio cannot listen on host:port, as one line an operator can act on; undefined for any
 * other error. EADDRINUSE and EACCES are the two a person meets (another program on the port, a
 * port below 1024 without privileges).
 */
export function describeListenError(err: unknown, host: string, port: number): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const where = `port ${port} on ${host}`;
  if (code === "EADDRINUSE") return `${where} is already in use; stop what holds it or choose another port with --port (or STUDIO_PORT)`;
  if (code === "EACCES") return `${where} needs privileges this user lacks; choose a port above 1023 with --port (or STUDIO_PORT)`;
  if (code === "EADDRNOTAVAIL") return `${host} is not an address of this machine; choose another with --host (or STUDIO_HOST)`;
  return undefined;
}

/**
 * Binds host:port for a moment and lets it go: resolves when the port can be listened on, rejects
 * with the bind's error otherwise. Start-up calls it before opening the data dir, so that a busy
 * port is reported first and nothing else is touched. Port 0 always fits.
 */
export function checkPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.on("error", reject);
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}
