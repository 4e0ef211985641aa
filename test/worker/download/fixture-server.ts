import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

/** One request the fixture server saw. */
export interface SeenRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
}

/** How a served file misbehaves; counters make faults happen only on the first requests. */
export interface ServeOptions {
  etag?: string;
  /** Answer Range requests with 206 (default true). */
  ranges?: boolean;
  /** Answer ranges only on the first N requests, then plain 200 (a server that stops honoring Range). */
  rangesForFirst?: number;
  /** Omit Content-Length (chunked transfer). */
  chunked?: boolean;
  /** Close the connection after this many body bytes (short of Content-Length), on the first `faultCount` requests. */
  dropAfter?: number;
  /** Send this many body bytes and then go silent (keep the socket open), on the first `faultCount` requests. */
  stallAfter?: number;
  faultCount?: number;
  /** Per-connection rate limit in bytes per second. */
  bytesPerSecond?: number;
  /** Answer these statuses first, one per request, before serving the file. */
  statusesFirst?: number[];
  /** Called once per body chunk sent (for tests that wait for progress). */
  onSent?: (sentSoFar: number) => void;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A node:http server on a loopback port 0 with a route table and a log of every request. */
export class FixtureServer {
  readonly requests: SeenRequest[] = [];
  private readonly routes = new Map<string, Handler>();
  private readonly sockets = new Set<import("node:net").Socket>();
  private server!: http.Server;
  origin = "";

  static async start(host: "127.0.0.1" | "localhost" = "127.0.0.1"): Promise<FixtureServer> {
    const s = new FixtureServer();
    s.server = http.createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0]!;
      s.requests.push({ method: req.method ?? "GET", path, headers: req.headers });
      const handler = s.routes.get(path);
      if (!handler) return void res.writeHead(404).end("not found");
      handler(req, res);
    });
    s.server.on("connection", (sock) => {
      s.sockets.add(sock);
      sock.on("close", () => s.sockets.delete(sock));
    });
    await new Promise<void>((resolve) => s.server.listen(0, host === "localhost" ? "127.0.0.1" : host, resolve));
    s.origin = `http://${host}:${(s.server.address() as AddressInfo).port}`;
    return s;
  }

  route(path: string, handler: Handler): string {
    this.routes.set(path, handler);
    return `${this.origin}${path}`;
  }

  /** Serves bytes with the given faults; returns the URL. */
  serve(path: string, body: Uint8Array, options: ServeOptions = {}): string {
    return this.route(path, serveBytes(body, options));
  }

  /** Requests for one path, GETs only. */
  gets(path: string): SeenRequest[] {
    return this.requests.filter((r) => r.path === path && r.method === "GET");
  }

  /** Resets every open connection (the client sees a dropped connection). */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A request handler that serves `body` with Range support and the faults in `options`. */
export function serveBytes(body: Uint8Array, options: ServeOptions = {}): Handler {
  let served = 0;
  const statuses = [...(options.statusesFirst ?? [])];
  return (req, res) => {
    const index = served++;
    const status = statuses.shift();
    if (status !== undefined) return void res.writeHead(status).end(`status ${status}`);
    const etag = options.etag ?? `"${sha256(body).slice(0, 16)}"`;
    if (req.headers["if-none-match"] === etag) return void res.writeHead(304, { etag }).end();
    let start = 0;
    let end = body.byteLength;
    let code = 200;
    const headers: Record<string, string> = { etag, "content-type": "application/octet-stream" };
    const rangesOn = (options.ranges ?? true) && (options.rangesForFirst === undefined || index < options.rangesForFirst);
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    const ifRange = req.headers["if-range"];
    if (rangesOn) headers["accept-ranges"] = "bytes";
    if (rangesOn && m && (ifRange === undefined || ifRange === etag)) {
      start = Number(m[1]);
      end = m[2] ? Number(m[2]) + 1 : body.byteLength;
      if (start >= body.byteLength) return void res.writeHead(416, { "content-range": `bytes */${body.byteLength}` }).end();
      code = 206;
      headers["content-range"] = `bytes ${start}-${end - 1}/${body.byteLength}`;
    }
    if (!options.chunked) headers["content-length"] = String(end - start);
    res.writeHead(code, headers);
    const faulty = index < (options.faultCount ?? 1);
    const limit = faulty ? (options.dropAfter ?? options.stallAfter) : undefined;
    sendSlice(res, body.subarray(start, end), limit, options.dropAfter !== undefined && faulty ? "drop" : "stall", options);
  };
}

function sendSlice(res: http.ServerResponse, slice: Uint8Array, limit: number | undefined, fault: "drop" | "stall", options: ServeOptions): void {
  const chunkSize = 16 * 1024;
  let sent = 0;
  const step = () => {
    if (res.destroyed) return;
    if (limit !== undefined && sent >= limit) {
      // Half-close after the bytes are flushed (FIN, not RST): the client gets every byte sent, then a short body.
      if (fault === "drop") res.socket?.end();
      return;
    }
    if (sent >= slice.byteLength) return void res.end();
    let n = Math.min(chunkSize, slice.byteLength - sent);
    if (limit !== undefined) n = Math.min(n, limit - sent);
    const ok = res.write(slice.subarray(sent, sent + n));
    sent += n;
    options.onSent?.(sent);
    const delay = options.bytesPerSecond ? (n / options.bytesPerSecond) * 1000 : 0;
    if (delay > 0) setTimeout(step, delay);
    else if (ok) setImmediate(step);
    else res.once("drain", step);
  };
  step();
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export function randomFile(bytes: number): Buffer {
  return randomBytes(bytes);
}
