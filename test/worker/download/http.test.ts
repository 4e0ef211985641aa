import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs/promises";
import { DownloadError, isHuggingFaceHost } from "../../../worker/download/index.js";
import { mayCarryToken } from "../../../worker/download/http-fetch.js";
import { FixtureServer, randomFile, sha256, serveBytes } from "./fixture-server.js";
import { listFiles, manager, modelFile, removeTempDirs, tempDir } from "./helpers.js";

let home: FixtureServer;
let cdn: FixtureServer;
beforeAll(async () => {
  home = await FixtureServer.start("127.0.0.1");
  cdn = await FixtureServer.start("localhost");
});
afterAll(async () => {
  await home.stop();
  await cdn.stop();
  await removeTempDirs();
});

const redirect = (to: string, status = 302) => (_req: unknown, res: import("node:http").ServerResponse) => void res.writeHead(status, { location: to }).end();

describe("redirects and the token", () => {
  test("a 302 chain to another origin drops Authorization there and never sends it again", async () => {
    const body = randomFile(128 * 1024);
    const final = home.serve("/back-home.bin", body);
    const bounce = cdn.route("/blob/abc", redirect(final, 301));
    const hop2 = home.route("/hop2", redirect(bounce, 307));
    const start = home.route("/resolve/main/model.gguf", redirect("/hop2"));
    expect(hop2).toContain("127.0.0.1");
    const { dm } = manager(await tempDir(), { hfToken: "hf_secret", isTokenHost: () => true });
    const cached = await dm.ensure(modelFile(start, "model.gguf", { sha256: sha256(body) }));
    expect(Buffer.compare(await fs.readFile(cached.path), body)).toBe(0);
    expect(home.gets("/resolve/main/model.gguf")[0]!.headers.authorization).toBe("Bearer hf_secret");
    expect(home.gets("/hop2")[0]!.headers.authorization).toBe("Bearer hf_secret");
    const atCdn = cdn.gets("/blob/abc");
    expect(atCdn.length).toBe(1);
    expect(atCdn[0]!.headers.authorization).toBeUndefined();
    const backHome = home.gets("/back-home.bin");
    expect(backHome.length).toBe(1);
    expect(backHome[0]!.headers.authorization).toBeUndefined();
    expect(backHome[0]!.headers.range).toBe("bytes=0-");
  });

  test("the token goes only to Hugging Face hosts by default", async () => {
    const body = randomFile(1024);
    const url = home.serve("/plain.bin", body);
    const { dm } = manager(await tempDir(), { hfToken: "hf_secret" });
    await dm.ensure(modelFile(url, "plain.bin", { sha256: sha256(body) }));
    expect(home.gets("/plain.bin")[0]!.headers.authorization).toBeUndefined();
    expect(isHuggingFaceHost("huggingface.co")).toBe(true);
    expect(isHuggingFaceHost("cdn-lfs.huggingface.co")).toBe(true);
    expect(isHuggingFaceHost("huggingface.co.evil.example")).toBe(false);
    expect(isHuggingFaceHost("nothuggingface.co")).toBe(false);
  });

  test("a redirect to a non-http scheme is refused as invalid", async () => {
    const url = home.route("/to-file", redirect("file:///etc/passwd"));
    const { dm } = manager(await tempDir());
    const err = (await dm.ensure(modelFile(url, "f.bin")).catch((e) => e)) as DownloadError;
    expect(err).toBeInstanceOf(DownloadError);
    expect(err.kind).toBe("invalid");
    expect(err.message).toContain("file:");
  });

  test("a redirect loop stops at maxRedirects", async () => {
    const url = home.route("/loop", redirect("/loop"));
    const { dm } = manager(await tempDir(), { maxRedirects: 3 });
    const err = (await dm.ensure(modelFile(url, "l.bin")).catch((e) => e)) as DownloadError;
    expect(err.kind).toBe("invalid");
    expect(home.gets("/loop").length).toBe(4);
  });
});

describe("parallel parts", () => {
  test("a throttled server: a large file is fetched as 4 concurrent ranges into one file, hashed in order", async () => {
    const body = randomFile(1024 * 1024);
    let active = 0;
    let peak = 0;
    const serve = serveBytes(body, { bytesPerSecond: 2 * 1024 * 1024 });
    const url = home.route("/parts.bin", (req, res) => {
      active++;
      peak = Math.max(peak, active);
      res.on("close", () => active--);
      serve(req, res);
    });
    const { dm } = manager(await tempDir(), { partThresholdBytes: 256 * 1024, parts: 4 });
    const cached = await dm.ensure(modelFile(url, "parts.bin", { sha256: sha256(body) }));
    expect(Buffer.compare(await fs.readFile(cached.path), body)).toBe(0);
    const ranges = home.gets("/parts.bin").map((r) => r.headers.range);
    expect(ranges).toEqual(["bytes=0-", "bytes=262144-524287", "bytes=524288-786431", "bytes=786432-1048575"]);
    expect(peak).toBe(4);
  });

  test("parts resume after a part's connection drops", async () => {
    const body = randomFile(1024 * 1024);
    const url = home.serve("/parts-drop.bin", body, { dropAfter: 100 * 1024, faultCount: 3 });
    const { dm } = manager(await tempDir(), { partThresholdBytes: 256 * 1024, parts: 4 });
    const cached = await dm.ensure(modelFile(url, "pd.bin", { sha256: sha256(body) }));
    expect(Buffer.compare(await fs.readFile(cached.path), body)).toBe(0);
  });

  test("a small file is one stream even when the server accepts ranges", async () => {
    const body = randomFile(100 * 1024);
    const url = home.serve("/small.bin", body);
    const { dm } = manager(await tempDir(), { partThresholdBytes: 256 * 1024, parts: 4 });
    await dm.ensure(modelFile(url, "s.bin", { sha256: sha256(body) }));
    expect(home.gets("/small.bin").length).toBe(1);
  });

  test("no Content-Length (chunked): streamed to the end, size taken from the body", async () => {
    const body = randomFile(200 * 1024);
    const url = home.serve("/chunked.bin", body, { chunked: true, ranges: false });
    const { dm } = manager(await tempDir());
    const cached = await dm.ensure(modelFile(url, "ch.bin", { sha256: sha256(body) }));
    expect(cached.sizeBytes).toBe(body.byteLength);
  });
});

/** An endless chunked body (no Content-Length), written as fast as the client reads, until the client goes away. */
function endless(sent: { bytes: number }) {
  return (_req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => {
    res.writeHead(200, { "content-type": "application/octet-stream" });
    const chunk = randomFile(16 * 1024);
    let open = true;
    res.on("close", () => void (open = false));
    const pump = () => {
      while (open && res.write(chunk)) sent.bytes += chunk.byteLength;
      if (open) res.once("drain", pump);
    };
    pump();
  };
}

describe("a body without Content-Length is capped", () => {
  async function expectCapped(path: string, options: Parameters<typeof manager>[1], extra: { approxBytes?: number }, cap: number, kind: string) {
    const sent = { bytes: 0 };
    const url = home.route(path, endless(sent));
    const cacheDir = await tempDir();
    const { dm } = manager(cacheDir, options);
    const err = (await dm.ensure(modelFile(url, "endless.gguf", extra)).catch((e) => e)) as DownloadError;
    expect(err).toBeInstanceOf(DownloadError);
    expect(err).toMatchObject({ kind, retryable: false });
    expect(err.message).toContain(url);
    expect(err.message).toContain("endless.gguf");
    expect(err.message).toContain(`${cap} bytes`);
    expect(sent.bytes).toBeGreaterThan(cap);
    expect(home.gets(path).length).toBe(1);
    expect(await listFiles(`${cacheDir}/partial`)).toEqual([]);
    expect(await dm.cachedUrls()).toEqual([]);
    return err;
  }

  test("with approxBytes: approxBytes × 1.5 + the slack, then a permanent too-large error and no partial", async () => {
    const err = await expectCapped("/endless-approx", { lengthlessSlackBytes: 256 * 1024 }, { approxBytes: 100 * 1024 }, 153_600 + 262_144, "too-large");
    expect(err.message).toContain("approxBytes 102400 × 1.5");
  });

  test("without approxBytes: the cache budget when it is smaller than the free space", async () => {
    const err = await expectCapped("/endless-budget", { cacheMaxBytes: 300 * 1024 }, {}, 300 * 1024, "too-large");
    expect(err.message).toContain("cacheMaxBytes");
  });

  test("without approxBytes or a budget: the free space when the download started, as a disk error", async () => {
    const err = await expectCapped("/endless-free", { freeBytes: async () => 200 * 1024 }, {}, 200 * 1024, "disk");
    expect(err.message).toContain("disk full");
    expect(err.message).toContain("free space");
  });
});

describe("the Hugging Face token over plain http (issue 16, item 9)", () => {
  test("is sent only over https to a token host; plain http to Hugging Face never carries it", () => {
    const policy = { isTokenHost: isHuggingFaceHost };
    expect(mayCarryToken(new URL("https://huggingface.co/org/m/resolve/main/x.gguf"), policy)).toBe(true);
    expect(mayCarryToken(new URL("http://huggingface.co/org/m/resolve/main/x.gguf"), policy)).toBe(false);
    expect(mayCarryToken(new URL("http://cdn-lfs.huggingface.co/x"), policy)).toBe(false);
    expect(mayCarryToken(new URL("https://example.com/x"), policy)).toBe(false);
    // Loopback never leaves the machine (and is no token host unless a test says so).
    expect(mayCarryToken(new URL("http://127.0.0.1:8080/x"), policy)).toBe(false);
    expect(mayCarryToken(new URL("http://127.0.0.1:8080/x"), { isTokenHost: () => true })).toBe(true);
  });
});
