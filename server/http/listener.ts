import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { ConnectionGuard, type ExpiryReason } from "./connection-guard.js";
import { peerKey, PeerConnections } from "./peer-address.js";
import { sniffPreface } from "./preface-sniffer.js";

/** A handler for both HTTP versions, as connect-node's adapter produces. */
export type DualHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Why the listener closed a connection itself (for metrics and logs). */
export type ConnectionRefusal = "max-connections-per-address" | ExpiryReason;

export interface ListenerOptions {
  host: string;
  port: number;
  handler: DualHandler;
  /** PEM cert and key: serve TLS, choosing HTTP/2 or HTTP/1.1 by ALPN. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * How long a new connection may take to present a complete request: an HTTP/1.1 request head or
   * a first HTTP/2 stream, the TLS handshake and protocol sniffing included. Default 10 s.
   */
  headersTimeoutMs?: number;
  /**
   * How long a connection may stay open with no request or stream in progress (between keep-alive
   * requests, after its last stream ended) before it is closed. Default 65 s.
   */
  idleTimeoutMs?: number;
  /** Open connections at most; the kernel hands over more, and they are closed at once. Default 10,000. */
  maxConnections?: number;
  /**
   * Open connections one peer may hold (an IPv4 address or an IPv6 /64), well below maxConnections so
   * that one misbehaving address cannot lock everyone else out. Default 1,000. Behind a reverse proxy
   * every connection comes from the proxy: raise it there.
   */
  maxConnectionsPerAddress?: number;
  /** Told each time the listener itself closes a connection, and why. */
  onRefused?: (why: ConnectionRefusal) => void;
}

/** Defaults for the listener's connection bounds. */
export const LISTENER_DEFAULTS = {
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 65_000,
  maxConnections: 10_000,
  maxConnectionsPerAddress: 1_000,
} as const;

/** A listening socket that serves HTTP/1.1 and HTTP/2 on one port. */
export interface Listener {
  readonly port: number;
  readonly host: string;
  /** Stops accepting, lets in-flight requests finish up to graceMs, then cuts what is left. */
  close(graceMs?: number): Promise<void>;
}

/**
 * One port for every client: browsers and curl (HTTP/1.1), workers' bidi streams and
 * gRPC clients (HTTP/2). Under Bun, node:http2's server does not answer HTTP/1.1 even
 * with allowHTTP1, so a plain TCP server looks at the first bytes (cleartext: the
 * HTTP/2 connection preface; TLS: the ALPN result) and hands the socket to the
 * node:http or node:http2 server. test/transport holds the stress test behind this choice.
 *
 * Every connection gets a ConnectionGuard (a request within headersTimeoutMs, then never idle
 * for longer than idleTimeoutMs) and counts against its peer's share: Bun's node:http ignores
 * headersTimeout and keepAliveTimeout, and node:http2 has no notion of either, so the listener
 * keeps these deadlines itself, the same way for cleartext and TLS.
 */
export async function listen(options: ListenerOptions): Promise<Listener> {
  const {
    headersTimeoutMs = LISTENER_DEFAULTS.headersTimeoutMs,
    idleTimeoutMs = LISTENER_DEFAULTS.idleTimeoutMs,
    maxConnections = LISTENER_DEFAULTS.maxConnections,
    maxConnectionsPerAddress = LISTENER_DEFAULTS.maxConnectionsPerAddress,
    onRefused,
  } = options;
  const guards = new WeakMap<object, ConnectionGuard>();
  const h1 = http.createServer((req, res) => {
    const guard = guards.get(req.socket);
    if (guard) {
      guard.started();
      res.once("close", guard.ended);
    }
    options.handler(req, res);
  });
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, options.handler as never);
  const sockets = new Set<net.Socket>();
  /** Cleartext sockets still being sniffed: closing the listener drops them at once. */
  const unrouted = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  /** HTTP/2 sessions by the TCP socket under them, for the guard's GOAWAY. */
  const sessionBySocket = new WeakMap<net.Socket, http2.Http2Session>();
  /** The TCP socket being handed to h2 right now, with its guard: node:http2 emits "session" synchronously. */
  let routing: { tcp: net.Socket; guard: ConnectionGuard } | undefined;
  h2.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
    if (!routing) return;
    const { tcp, guard } = routing;
    sessionBySocket.set(tcp, s);
    s.on("stream", (stream: http2.ServerHttp2Stream) => {
      guard.started();
      stream.once("close", guard.ended);
    });
  });

  const peers = new PeerConnections(maxConnectionsPerAddress);
  /** Counts a new TCP connection against its peer and gives it a guard; false when it was refused. */
  const admit = (socket: net.Socket): boolean => {
    const key = peerKey(socket.remoteAddress);
    if (!peers.admit(key)) {
      onRefused?.("max-connections-per-address");
      socket.destroy();
      return false;
    }
    const guard = new ConnectionGuard(idleTimeoutMs, headersTimeoutMs, (why) => {
      onRefused?.(why);
      const session = sessionBySocket.get(socket);
      // An idle HTTP/2 connection gets a GOAWAY first, so that its client opens a new one cleanly.
      if (why === "idle" && session && !session.destroyed) {
        session.close();
        setTimeout(() => socket.destroy(), 1000).unref?.();
      } else socket.destroy();
    });
    guards.set(socket, guard);
    sockets.add(socket);
    // Small writes go out at once: a streamed token (SSE, WatchJobs, a worker's offer) must not
    // wait for the peer's delayed ACK behind Nagle's algorithm. node:http sets this on the sockets
    // its own server accepts; these are accepted here and handed over.
    socket.setNoDelay(true);
    socket.once("close", () => {
      guard.dispose();
      sockets.delete(socket);
      peers.release(key);
    });
    socket.on("error", () => socket.destroy());
    return true;
  };

  /** Hands a socket to the server of its protocol; tcp is the accepted socket (the same one unless Node wrapped it in TLS). */
  const route = (socket: net.Socket, tcp: net.Socket, isH2: boolean) => {
    if (!isH2) return h1.emit("connection", socket);
    const guard = guards.get(tcp);
    routing = guard && { tcp, guard };
    try {
      h2.emit("connection", socket);
    } finally {
      routing = undefined;
    }
  };

  const onCleartext = (socket: net.Socket) => {
    if (!admit(socket)) return;
    unrouted.add(socket);
    void sniffPreface(socket).then((result) => {
      unrouted.delete(socket);
      if (result === "silent") socket.destroy();
      else route(socket, socket, result === "h2");
    });
  };
  /** TLS connections still in their handshake (Bun's handshakeTimeout does nothing; the guard's deadline ends them). */
  const handshaking = new Set<net.Socket>();
  const onTcpUnderTls = (socket: net.Socket) => {
    if (!admit(socket)) return;
    handshaking.add(socket);
    socket.once("close", () => handshaking.delete(socket));
  };
  const onSecure = (socket: tls.TLSSocket) => {
    // Bun passes the same socket to "connection" and here; Node passes the TLSSocket wrapping it.
    const tcp = handshaking.has(socket) ? socket : ((socket as { _parent?: net.Socket })._parent ?? socket);
    handshaking.delete(tcp);
    const guard = guards.get(tcp);
    if (guard && tcp !== socket) {
      guards.set(socket, guard);
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      socket.on("error", () => socket.destroy());
    }
    route(socket, tcp, socket.alpnProtocol === "h2");
  };

  const server: net.Server = options.tls
    ? tls.createServer({ ...options.tls, ALPNProtocols: ["h2", "http/1.1"], handshakeTimeout: headersTimeoutMs }, onSecure)
    : net.createServer(onCleartext);
  if (options.tls) server.on("connection", onTcpUnderTls);
  server.maxConnections = maxConnections;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as net.AddressInfo;

  return {
    port: address.port,
    host: options.host,
    async close(graceMs = 5000) {
      server.close();
      for (const s of unrouted) s.destroy();
      for (const s of handshaking) s.destroy();
      for (const s of sessions) s.close();
      h1.closeIdleConnections?.();
      const drained = Promise.all([...sockets].map((s) => new Promise<void>((r) => (s.closed ? r() : s.once("close", () => r())))));
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([drained, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
    },
  };
}
