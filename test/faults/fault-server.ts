import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** How the server answers one path. Faults apply to the first `faultCount` GETs only (default: all). */
export type Fault =
  | { kind: "none" }
  /** Send this many body bytes of a full Content-Length answer, then reset the connection. */
  | { kind: "drop"; afterBytes: number }
  /** Answer every request with 200 and the whole body, Range or not (and advertise no ranges). */
  | { kind: "ignore-range" }
  /** Serve these bytes instead of the file's. */
  | { kind: "wrong-bytes"; bytes: Uint8Array }
  /** Send `firstBytes`, then one byte every `everyMs` (slower than the stall timeout). */
  | { kind: "trickle"; firstBytes: number; everyMs: number }
  /** No Content-Length (chunked), so the size is unknown until the end. */
  | { kind: "chunked" }
  /** 302 to the same path on another origin. */
  | { kind: "redirect"; to: string };

/** One request the server saw. */
export interface Seen {
  method: string;
  path: string;
  range?: string;
  authorization?: string;
}

/**
 * A local HTTP server for model files with fault switches, for download fault tests through the real
 * worker. Honors Range (206) unless told to ignore it; ETag is the file's digest.
 */
export class FaultServer {
  readonly seen: Seen[] = [];
  readonly files = new Map<string, { body: Uint8Array; etag: string; fault: Fault; faultCount: number }>();
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<ReturnType<typeof setInterval>>();
  private server!: http.Server;
  origin = "";

  static async start(): Promise<FaultServer> {
    const s = new FaultServer();
    s.server = http.createServer((req, res) => s.handle(req, res));
    s.server.on("connection", (sock) => {
      s.sockets.add(sock);
      sock.on("close", () => s.sockets.delete(sock));
    });
    await new Promise<void>((ok) => s.server.listen(0, "127.0.0.1", ok));
    s.origin = `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`;
    return s;
  }

  /** Serves `body` at `/name` with a fault on the first `faultCount` GETs (Infinity: always). */
  serve(name: string, body: Uint8Array, fault: Fault = { kind: "none" }, faultCount = Infinity): string {
    this.files.set(`/${name}`, { body, etag: `"${name}-${body.byteLength}"`, fault, faultCount });
    return `${this.origin}/${name}`;
  }

  /** Ends the fault for a path: later requests get the file as it is. */
  heal(name: string): void {
    const f = this.files.get(`/${name}`);
    if (f) f.fault = { kind: "none" };
  }

  gets(name: string): Seen[] {
    return this.seen.filter((s) => s.method === "GET" && s.path === `/${name}`);
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? "/").split("?")[0]!;
    this.seen.push({ method: req.method ?? "GET", path, range: req.headers.range, authorization: req.headers.authorization });
    const file = this.files.get(path);
    if (!file) return void res.writeHead(404).end("not found");
    let fault = file.fault;
    if (req.method === "GET") {
      if (file.faultCount <= 0) fault = { kind: "none" };
      else file.faultCount -= 1;
    }
    if (fault.kind === "redirect") return void res.writeHead(302, { location: `${fault.to}${path}` }).end();
    const body = fault.kind === "wrong-bytes" ? fault.bytes : file.body;
    const ranges = fault.kind !== "ignore-range" && fault.kind !== "chunked";
    const m = ranges ? /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "") : null;
    const ifRange = req.headers["if-range"];
    const partial = m !== null && (ifRange === undefined || ifRange === file.etag);
    const start = partial ? Number(m[1]) : 0;
    const end = partial && m[2] !== "" ? Math.min(Number(m[2]), body.byteLength - 1) : body.byteLength - 1;
    if (partial && start >= body.byteLength) return void res.writeHead(416, { "content-range": `bytes */${body.byteLength}` }).end();
    const headers: http.OutgoingHttpHeaders = {
      "content-type": "application/octet-stream",
      ...(fault.kind === "chunked" ? {} : { "content-length": end + 1 - start }),
      etag: file.etag,
      "accept-ranges": ranges ? "bytes" : "none",
    };
    if (partial) headers["content-range"] = `bytes ${start}-${end}/${body.byteLength}`;
    res.writeHead(partial ? 206 : 200, headers);
    if (req.method === "HEAD") return void res.end();
    const rest = Buffer.from(body.subarray(start, end + 1));
    if (fault.kind === "drop") {
      const cut = Math.max(0, fault.afterBytes - start);
      res.write(rest.subarray(0, cut), () => setTimeout(() => req.socket.resetAndDestroy(), 50));
      return;
    }
    if (fault.kind === "trickle") {
      res.write(rest.subarray(0, fault.firstBytes));
      let at = fault.firstBytes;
      const timer = setInterval(() => {
        if (at >= rest.byteLength || res.destroyed) {
          clearInterval(timer);
          this.timers.delete(timer);
          if (!res.destroyed) res.end();
          return;
        }
        res.write(rest.subarray(at, at + 1));
        at += 1;
      }, fault.everyMs);
      this.timers.add(timer);
      res.on("close", () => {
        clearInterval(timer);
        this.timers.delete(timer);
      });
      return;
    }
    res.end(rest);
  }
}
