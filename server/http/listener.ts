import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { sniffPreface } from "./preface-sniffer.js";

/** A handler for both HTTP versions, as connect-node's adapter produces. */
export type DualHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

export interface ListenerOptions {
  host: string;
  port: number;
  handler: DualHandler;
  /** PEM cert and key: serve TLS, choosing HTTP/2 or HTTP/1.1 by ALPN. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * How long a new connection may take to say what it is (cleartext: the first bytes; TLS: the
   * handshake) before it is destroyed, so that silent connects cannot pile up. Default 10 s.
   */
  firstBytesTimeoutMs?: number;
  /** Open connections at most; the kernel hands over more, and they are closed at once. Default 10,000. */
  maxConnections?: number;
}

/** Defaults for the listener's connection bounds. */
export const LISTENER_DEFAULTS = { firstBytesTimeoutMs: 10_000, maxConnections: 10_000 } as const;

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
 */
export async function listen(options: ListenerOptions): Promise<Listener> {
  const { firstBytesTimeoutMs = LISTENER_DEFAULTS.firstBytesTimeoutMs, maxConnections = LISTENER_DEFAULTS.maxConnections } = options;
  const h1 = http.createServer(options.handler as http.RequestListener);
  h1.keepAliveTimeout = 65_000;
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, options.handler as never);
  const sockets = new Set<net.Socket>();
  /** Cleartext sockets still being sniffed: closing the listener drops them at once. */
  const unrouted = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  h2.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });

  const route = (socket: net.Socket, isH2: boolean) => (isH2 ? h2 : h1).emit("connection", socket);

  const onCleartext = (socket: net.Socket) => {
    track(socket);
    unrouted.add(socket);
    void sniffPreface(socket, firstBytesTimeoutMs).then((result) => {
      unrouted.delete(socket);
      if (result === "silent") socket.destroy();
      else route(socket, result === "h2");
    });
  };
  /** TLS connections still in their handshake, with the timer that ends them (Bun's handshakeTimeout does nothing). */
  const handshaking = new Map<net.Socket, ReturnType<typeof setTimeout>>();
  const onTcpUnderTls = (socket: net.Socket) => {
    const timer = setTimeout(() => socket.destroy(), firstBytesTimeoutMs);
    handshaking.set(socket, timer);
    socket.once("close", () => {
      clearTimeout(timer);
      handshaking.delete(socket);
    });
  };
  const onSecure = (socket: tls.TLSSocket) => {
    // Bun passes the same socket to "connection" and here; Node passes the TLSSocket wrapping it.
    const tcp = handshaking.has(socket) ? socket : (socket as { _parent?: net.Socket })._parent;
    if (tcp) {
      clearTimeout(handshaking.get(tcp));
      handshaking.delete(tcp);
    }
    track(socket);
    route(socket, socket.alpnProtocol === "h2");
  };
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };

  const server: net.Server = options.tls
    ? tls.createServer({ ...options.tls, ALPNProtocols: ["h2", "http/1.1"], handshakeTimeout: firstBytesTimeoutMs }, onSecure)
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
      for (const s of handshaking.keys()) s.destroy();
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
