import { afterEach, describe, expect, test } from "bun:test";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import { listen, type DualHandler, type Listener } from "../../server/http/listener.js";
import { H2_PREFACE, sniffPreface } from "../../server/http/preface-sniffer.js";
import { makeTestCert } from "../helpers/test-cert.js";

/** Answers every request with the HTTP version it came over, so a test can see where a socket was routed. */
const handler: DualHandler = (req, res) => {
  res.setHeader("content-type", "text/plain");
  res.end(`http ${req.httpVersion}`);
};

const listeners: Listener[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const l of listeners.splice(0)) await l.close(1000);
});

async function start(options: Partial<Parameters<typeof listen>[0]> = {}) {
  const l = await listen({ host: "127.0.0.1", port: 0, handler, ...options });
  listeners.push(l);
  return l;
}

/** A raw TCP connection; resolves once connected. */
async function connect(port: number): Promise<net.Socket> {
  const s = net.connect(port, "127.0.0.1");
  sockets.push(s);
  await new Promise<void>((ok, fail) => s.once("connect", ok).once("error", fail));
  return s;
}

const closed = (s: net.Socket) => new Promise<void>((r) => (s.closed ? r() : s.once("close", () => r())));

async function h1Get(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/`)).text();
}

async function h2Get(port: number): Promise<string> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const stream = session.request({ ":path": "/" });
    stream.setEncoding("utf8");
    let body = "";
    stream.on("data", (c: string) => (body += c));
    await new Promise<void>((ok, fail) => stream.once("end", ok).once("error", fail));
    return body;
  } finally {
    session.close();
  }
}

describe("listener: connections that say nothing", () => {
  test("a silent connection is closed after headersTimeoutMs while the listener keeps serving HTTP/1.1 and HTTP/2", async () => {
    const l = await start({ headersTimeoutMs: 300 });
    const silent = await connect(l.port);
    const silentClosed = closed(silent);
    expect(await h1Get(l.port)).toBe("http 1.1");
    expect(await h2Get(l.port)).toBe("http 2.0");
    await silentClosed;
    expect(silent.destroyed).toBe(true);
    // A connection that sent a few bytes of the HTTP/2 preface and then stalled is closed too.
    const stalled = await connect(l.port);
    stalled.write(H2_PREFACE.subarray(0, 5));
    await closed(stalled);
    expect(await h1Get(l.port)).toBe("http 1.1");
  });

  test("close() drops unrouted connections at once and resolves when every socket has closed", async () => {
    const l = await start({ headersTimeoutMs: 60_000 });
    const silent = await connect(l.port);
    const silentClosed = closed(silent);
    expect(await h1Get(l.port)).toBe("http 1.1");
    listeners.splice(listeners.indexOf(l), 1);
    await l.close(60_000);
    await silentClosed;
  });

  test("past maxConnections, new connections are closed at once", async () => {
    const l = await start({ headersTimeoutMs: 60_000, maxConnections: 2 });
    await connect(l.port);
    await connect(l.port);
    const third = await connect(l.port);
    await closed(third);
    expect(third.destroyed).toBe(true);
  });
});

describe("listener: TLS", () => {
  test("a connection that never starts the TLS handshake is closed after headersTimeoutMs", async () => {
    const dir = mkdtempSync(join(tmpdir(), "studio-listener-tls-"));
    try {
      const pem = await makeTestCert(dir);
      const l = await start({ headersTimeoutMs: 300, tls: { cert: readFileSync(pem.cert), key: readFileSync(pem.key) } });
      const secure = tls.connect({ port: l.port, host: "127.0.0.1", rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] });
      sockets.push(secure);
      await new Promise<void>((ok, fail) => secure.once("secureConnect", ok).once("error", fail));
      // A connection that finished its handshake and asked in time is served.
      const reply = new Promise<string>((r) => secure.once("data", (b: Buffer) => r(b.toString())));
      secure.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      const silent = await connect(l.port);
      await closed(silent);
      expect(silent.destroyed).toBe(true);
      expect(await reply).toContain("http 1.1");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("listener: the HTTP/2 preface in pieces", () => {
  test("a preface split across two writes still routes to HTTP/2", async () => {
    const l = await start();
    const s = await connect(l.port);
    const preface = Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);
    const first = new Promise<Buffer>((r) => s.once("data", r));
    await new Promise<void>((r) => s.write(preface.subarray(0, 6), () => r()));
    // Give the server a chance to read the first piece on its own (it must then wait for more).
    await new Promise((r) => setTimeout(r, 50));
    s.write(preface.subarray(6));
    const reply = await first;
    // The server's first frame: a SETTINGS frame (type 4) on stream 0, not "HTTP/1.1 400".
    expect(reply.subarray(0, 4).toString("latin1")).not.toBe("HTTP");
    expect(reply[3]).toBe(4);
  });

  test("sniffPreface waits for a matching prefix, decides on the first byte that differs, and puts the bytes back", async () => {
    const pair = () => {
      const d = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
      return d as unknown as net.Socket & Duplex;
    };
    const h2 = pair();
    const h2Result = sniffPreface(h2, 60_000);
    let settled = false;
    void h2Result.then(() => (settled = true));
    h2.push(H2_PREFACE.subarray(0, 3));
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    h2.push(H2_PREFACE.subarray(3));
    expect(await h2Result).toBe("h2");
    expect((h2.read() as Buffer).equals(H2_PREFACE)).toBe(true);

    const h1 = pair();
    const h1Result = sniffPreface(h1, 60_000);
    h1.push(Buffer.from("PRX"));
    expect(await h1Result).toBe("http1");
    expect((h1.read() as Buffer).toString()).toBe("PRX");

    const gone = pair();
    const goneResult = sniffPreface(gone, 60_000);
    gone.push(Buffer.from("PR"));
    gone.push(null);
    gone.resume();
    expect(await goneResult).toBe("silent");
  });
});
