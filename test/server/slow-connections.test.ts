import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConnectionGuard } from "../../server/http/connection-guard.js";
import { listen, type ConnectionRefusal, type DualHandler, type Listener } from "../../server/http/listener.js";
import { peerKey, PeerConnections } from "../../server/http/peer-address.js";
import { makeTestCert, type TestCert } from "../helpers/test-cert.js";

/**
 * Issue 16, item 1: connections that send a little and then stall. Before the fix only fully
 * silent cleartext sockets were closed; one byte of HTTP/1.1, an HTTP/2 preface with no stream,
 * or the same under TLS held a connection slot forever, and one address could take them all.
 */

/** "/hold?ms=N" answers after N ms (an open request); anything else at once. */
const handler: DualHandler = (req, res) => {
  const hold = /^\/hold\?ms=(\d+)$/.exec(req.url ?? "");
  const answer = () => {
    res.setHeader("content-type", "text/plain");
    res.end(`http ${req.httpVersion}`);
  };
  if (hold) setTimeout(answer, Number(hold[1]));
  else answer();
};

const listeners: Listener[] = [];
const sockets: net.Socket[] = [];
const h2Sessions: http2.ClientHttp2Session[] = [];
let pem: TestCert;
let certDir: string;
beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), "studio-slow-tls-"));
  pem = await makeTestCert(certDir);
});
afterAll(() => rmSync(certDir, { recursive: true, force: true }));
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of h2Sessions.splice(0)) s.destroy();
  for (const l of listeners.splice(0)) await l.close(1000);
});

async function start(options: Partial<Parameters<typeof listen>[0]> = {}) {
  const l = await listen({ host: "127.0.0.1", port: 0, handler, ...options });
  listeners.push(l);
  return l;
}
const withTls = () => ({ tls: { cert: readFileSync(pem.cert), key: readFileSync(pem.key) } });

/**
 * A raw TCP connection from localAddress (127.0.0.1 unless given); resolves once connected. It reads
 * (and drops) whatever the server sends unless a test listens: an unread socket never sees its close.
 */
async function connect(port: number, localAddress = "127.0.0.1"): Promise<net.Socket> {
  const s = net.connect({ port, host: "127.0.0.1", localAddress });
  sockets.push(s);
  await new Promise<void>((ok, fail) => s.once("connect", ok).once("error", fail));
  s.on("error", () => {});
  s.resume();
  return s;
}

/** A TLS connection that has finished its handshake, with the given ALPN protocol. */
async function connectTls(port: number, alpn: "h2" | "http/1.1"): Promise<tls.TLSSocket> {
  const s = tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false, ALPNProtocols: [alpn] });
  sockets.push(s);
  await new Promise<void>((ok, fail) => s.once("secureConnect", ok).once("error", fail));
  s.on("error", () => {});
  s.resume();
  return s;
}

/** Resolves with the ms from now until the socket closes. */
const closedAfter = (s: net.Socket): Promise<number> => {
  const t0 = performance.now();
  return new Promise((r) => (s.closed ? r(0) : s.once("close", () => r(performance.now() - t0))));
};

/** A raw HTTP/1.1 GET on a socket; resolves with the first bytes of the reply. */
function rawGet(s: net.Socket, path = "/"): Promise<string> {
  const reply = new Promise<string>((r) => s.once("data", (b: Buffer) => r(b.toString("latin1"))));
  s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  return reply;
}

/** An h2c session (prior knowledge) and a GET on it. */
function h2Connect(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  h2Sessions.push(session);
  return session;
}
function h2Get(session: http2.ClientHttp2Session, path = "/"): Promise<string> {
  const stream = session.request({ ":path": path });
  stream.setEncoding("utf8");
  let body = "";
  stream.on("data", (c: string) => (body += c));
  return new Promise((ok, fail) => stream.once("end", () => ok(body)).once("error", fail));
}
const sessionClosed = (s: http2.ClientHttp2Session) => new Promise<void>((r) => (s.closed ? r() : s.once("close", () => r())));

describe("HTTP/1.1: a request head within headersTimeoutMs", () => {
  test("a connection that sent one byte is closed at the headers deadline, and so is one trickling its head", async () => {
    const refused: ConnectionRefusal[] = [];
    const l = await start({ headersTimeoutMs: 300, idleTimeoutMs: 60_000, onRefused: (why) => refused.push(why) });
    const oneByte = await connect(l.port);
    oneByte.write("G");
    const trickle = await connect(l.port);
    const head = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    trickle.write(head);
    const dripper = setInterval(() => trickle.writable && trickle.write("a"), 40);
    try {
      const [a, b] = await Promise.all([closedAfter(oneByte), closedAfter(trickle)]);
      expect(a).toBeLessThan(5000);
      expect(b).toBeLessThan(5000);
    } finally {
      clearInterval(dripper);
    }
    expect(refused).toEqual(["headers", "headers"]);
    // Meanwhile the listener kept serving.
    expect(await rawGet(await connect(l.port))).toStartWith("HTTP/1.1 200");
  });

  test("an idle keep-alive connection is closed after idleTimeoutMs; a request still being answered keeps it", async () => {
    const l = await start({ headersTimeoutMs: 200, idleTimeoutMs: 300 });
    const idle = await connect(l.port);
    expect(await rawGet(idle)).toStartWith("HTTP/1.1 200");
    const busy = await connect(l.port);
    // Held for well over both deadlines: an open request is never cut by them.
    const held = rawGet(busy, "/hold?ms=900");
    await closedAfter(idle);
    expect(await held).toStartWith("HTTP/1.1 200");
    expect(busy.closed).toBe(false);
    // And it still serves the next request on the same connection.
    expect(await rawGet(busy)).toStartWith("HTTP/1.1 200");
  });
});

describe("HTTP/2: a first stream within headersTimeoutMs, then never idle for long", () => {
  test("an h2c connection that sent its preface and no stream is closed at the headers deadline", async () => {
    const l = await start({ headersTimeoutMs: 300, idleTimeoutMs: 60_000 });
    const s = await connect(l.port);
    // The client preface and an empty SETTINGS frame: a valid HTTP/2 connection with no stream.
    s.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    expect(await closedAfter(s)).toBeLessThan(5000);
  });

  test("a session whose streams all ended gets a GOAWAY after idleTimeoutMs; one with an open stream is left alone", async () => {
    const l = await start({ headersTimeoutMs: 200, idleTimeoutMs: 300 });
    const idle = h2Connect(l.port);
    expect(await h2Get(idle)).toBe("http 2.0");
    const goaway = new Promise<void>((r) => idle.once("goaway", () => r()));
    const busy = h2Connect(l.port);
    const held = h2Get(busy, "/hold?ms=900");
    await goaway;
    await sessionClosed(idle);
    expect(await held).toBe("http 2.0");
    expect(busy.closed).toBe(false);
    expect(await h2Get(busy)).toBe("http 2.0");
  });
});

describe("TLS: the same deadlines after the handshake", () => {
  test("HTTP/1.1 over TLS that sent one byte, and HTTP/2 over TLS with no stream, are closed at the headers deadline", async () => {
    const l = await start({ headersTimeoutMs: 400, idleTimeoutMs: 60_000, ...withTls() });
    const h1 = await connectTls(l.port, "http/1.1");
    h1.write("G");
    const h2 = await connectTls(l.port, "h2");
    h2.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    const [a, b] = await Promise.all([closedAfter(h1), closedAfter(h2)]);
    expect(a).toBeLessThan(5000);
    expect(b).toBeLessThan(5000);
    // A fresh TLS connection that asks at once is answered.
    const ok = await connectTls(l.port, "http/1.1");
    expect(await rawGet(ok)).toStartWith("HTTP/1.1 200");
  });

  test("an idle HTTP/1.1 connection over TLS is closed after idleTimeoutMs", async () => {
    const l = await start({ headersTimeoutMs: 200, idleTimeoutMs: 300, ...withTls() });
    const s = await connectTls(l.port, "http/1.1");
    expect(await rawGet(s)).toStartWith("HTTP/1.1 200");
    expect(await closedAfter(s)).toBeLessThan(5000);
  });
});

describe("per-address connection cap", () => {
  test("one address past its cap is refused at once while another address is still served", async () => {
    const refused: ConnectionRefusal[] = [];
    const l = await start({ headersTimeoutMs: 60_000, maxConnectionsPerAddress: 5, onRefused: (why) => refused.push(why) });
    const hogs = await Promise.all(Array.from({ length: 5 }, () => connect(l.port)));
    for (const s of hogs) s.write("G");
    const extra = await connect(l.port);
    await closedAfter(extra);
    expect(refused).toEqual(["max-connections-per-address"]);
    // 127.0.0.2 is another peer (the whole of 127/8 reaches loopback): its share is untouched.
    const other = await connect(l.port, "127.0.0.2");
    expect(await rawGet(other)).toStartWith("HTTP/1.1 200");
    // A hog that closes frees its slot for its own address, once the listener has seen the close.
    hogs[0]!.destroy();
    let answer: string | undefined;
    for (let attempt = 0; attempt < 100 && answer === undefined; attempt++) {
      const again = await connect(l.port);
      answer = await Promise.race([rawGet(again), closedAfter(again).then(() => undefined)]);
    }
    expect(answer).toStartWith("HTTP/1.1 200");
  });

  test("under TLS the cap applies before the handshake", async () => {
    const l = await start({ headersTimeoutMs: 60_000, maxConnectionsPerAddress: 2, ...withTls() });
    await connect(l.port);
    await connect(l.port);
    const extra = await connect(l.port);
    await closedAfter(extra);
    const raw = await connect(l.port, "127.0.0.2");
    raw.pause();
    const other = tls.connect({ socket: raw, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] });
    sockets.push(other);
    await new Promise<void>((ok, fail) => other.once("secureConnect", ok).once("error", fail));
    expect(await rawGet(other)).toStartWith("HTTP/1.1 200");
  });

  test("peerKey: IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64", () => {
    expect(peerKey("127.0.0.1")).toBe("127.0.0.1");
    expect(peerKey("::ffff:10.1.2.3")).toBe("10.1.2.3");
    expect(peerKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(peerKey("2001:0db8:0001:0002:ffff:ffff:ffff:ffff")).toBe("2001:db8:1:2::/64");
    expect(peerKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(peerKey("::1")).toBe("0:0:0:0::/64");
    expect(peerKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(peerKey(undefined)).toBe("(unknown)");
    const peers = new PeerConnections(2);
    expect([peers.admit("a"), peers.admit("a"), peers.admit("a"), peers.admit("b")]).toEqual([true, true, false, true]);
    peers.release("a");
    expect(peers.admit("a")).toBe(true);
  });
});

describe("ConnectionGuard", () => {
  test("expires once for headers, never while something is open, then for idle", async () => {
    const expired: string[] = [];
    const noHead = new ConnectionGuard(60_000, 30, (why) => expired.push(why));
    const busy = new ConnectionGuard(60, 30, (why) => expired.push(`busy ${why}`));
    busy.started();
    await Bun.sleep(120);
    expect(expired).toEqual(["headers"]);
    busy.ended();
    expect(busy.open).toBe(0);
    await Bun.sleep(150);
    expect(expired).toEqual(["headers", "busy idle"]);
    noHead.dispose();
    busy.dispose();
  });
});
