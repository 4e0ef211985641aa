import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs/promises";
import { DownloadError } from "../../../worker/download/index.js";
import { FixtureServer, randomFile, serveBytes, sha256 } from "./fixture-server.js";
import { listFiles, manager, modelFile, removeTempDirs, tempDir } from "./helpers.js";

let server: FixtureServer;
beforeAll(async () => {
  server = await FixtureServer.start();
});
afterAll(async () => {
  await server.stop();
  await removeTempDirs();
});

describe("resume", () => {
  test("a connection dropped mid-file resumes with Range and If-Range, not from zero", async () => {
    const body = randomFile(512 * 1024);
    // The server goes quiet after 200 KiB; once the client has written them, the connection is reset.
    const url = server.serve("/drop.bin", body, { stallAfter: 200 * 1024, etag: '"drop-1"' });
    const { dm } = manager(await tempDir());
    const onProgress = (p: { bytesDone: number }) => p.bytesDone === 200 * 1024 && server.dropConnections();
    const cached = await dm.ensure(modelFile(url, "drop.bin", { sha256: sha256(body) }), { onProgress });
    expect(Buffer.compare(await fs.readFile(cached.path), body)).toBe(0);
    const gets = server.gets("/drop.bin");
    expect(gets.length).toBe(2);
    const resumed = /^bytes=(\d+)-(\d*)$/.exec(gets[1]!.headers.range ?? "");
    expect(resumed).not.toBeNull();
    expect(Number(resumed![1])).toBe(200 * 1024);
    expect(gets[1]!.headers["if-range"]).toBe('"drop-1"');
  });

  test("a worker killed mid-file: a new process resumes from the sidecar and takes over the dead pid's lock", async () => {
    const body = randomFile(1024 * 1024);
    const half = 384 * 1024;
    const url = server.serve("/restart.bin", body, { stallAfter: half });
    const cacheDir = await tempDir();
    const child = Bun.spawn(["bun", `${import.meta.dir}/child-download.ts`, cacheDir, url, "restart.bin", sha256(body)], { stdout: "pipe", stderr: "inherit" });
    const sidecar = `${cacheDir}/partial/sha256-${sha256(body)}.json`;
    const reader = child.stdout.getReader();
    let seen = "";
    while (!seen.includes(`progress ${half}\n`)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`child ended early: ${seen}`);
      seen += new TextDecoder().decode(value);
    }
    // The sidecar is written at most a second after the bytes; wait for it to count them, then kill.
    for (;;) {
      const state = JSON.parse(await fs.readFile(sidecar, "utf8").catch(() => "{}"));
      if (state.parts?.[0]?.next === half) break;
      await Bun.sleep(50);
    }
    child.kill("SIGKILL");
    await child.exited;
    expect((await listFiles(`${cacheDir}/locks`)).length).toBe(1);

    const { dm } = manager(cacheDir);
    const cached = await dm.ensure(modelFile(url, "restart.bin", { sha256: sha256(body) }));
    expect(Buffer.compare(await fs.readFile(cached.path), body)).toBe(0);
    const gets = server.gets("/restart.bin");
    expect(gets.length).toBe(2);
    expect(gets[1]!.headers.range).toBe(`bytes=${half}-${body.byteLength - 1}`);
    expect(await listFiles(`${cacheDir}/partial`)).toEqual([]);
    cached.release();
  });

  test("a server that ignores Range restarts cleanly from zero after a drop", async () => {
    const body = randomFile(256 * 1024);
    const url = server.serve("/norange.bin", body, { ranges: false, dropAfter: 100 * 1024 });
    const { dm } = manager(await tempDir());
    const cached = await dm.ensure(modelFile(url, "norange.bin", { sha256: sha256(body) }));
    expect(Buffer.compare(await fs.readFile(cached.path), body)).toBe(0);
    const gets = server.gets("/norange.bin");
    expect(gets.length).toBe(2);
    expect(gets[1]!.headers.range).toBe("bytes=0-");
  });

  test("a server without ranges that always drops gives up: restarting from zero is not progress", async () => {
    const body = randomFile(128 * 1024);
    const url = server.serve("/norange-drops.bin", body, { ranges: false, dropAfter: 64 * 1024, faultCount: 100 });
    const { dm } = manager(await tempDir(), { maxRetries: 2 });
    const err = (await dm.ensure(modelFile(url, "nd.bin", { sha256: sha256(body) })).catch((e) => e)) as DownloadError;
    expect(err).toMatchObject({ kind: "network", retryable: true });
    expect(err.message).toContain("gave up after 2 retries");
    expect(server.gets("/norange-drops.bin").length).toBe(3);
  });

  test("200 instead of 206 on a resume starts over and still verifies", async () => {
    const body = randomFile(256 * 1024);
    const url = server.serve("/ranges-stop.bin", body, { rangesForFirst: 1, dropAfter: 100 * 1024 });
    const { dm, warnings } = manager(await tempDir());
    const cached = await dm.ensure(modelFile(url, "rs.bin", { sha256: sha256(body) }));
    expect(Buffer.compare(await fs.readFile(cached.path), body)).toBe(0);
    expect(warnings.some((w) => w.msg === "download restarts from zero")).toBe(true);
  });

  test("a file changed under the same ETag: the resumed copy fails verification once, then a clean download succeeds", async () => {
    const before = randomFile(256 * 1024);
    const after = randomFile(256 * 1024);
    const first = serveBytes(before, { etag: '"same"', stallAfter: 100 * 1024 });
    const later = serveBytes(after, { etag: '"same"' });
    let n = 0;
    const url = server.route("/changed-under.bin", (req, res) => (n++ === 0 ? first : later)(req, res));
    const { dm, warnings } = manager(await tempDir(), { stallTimeoutMs: 150 });
    const cached = await dm.ensure(modelFile(url, "cu.bin", { sha256: sha256(after) }));
    expect(Buffer.compare(await fs.readFile(cached.path), after)).toBe(0);
    expect(warnings.some((w) => w.msg?.includes("failed verification"))).toBe(true);
    expect(server.gets("/changed-under.bin").map((r) => r.headers.range)).toEqual(["bytes=0-", `bytes=${100 * 1024}-${256 * 1024 - 1}`, "bytes=0-"]);
  });

  test("a sidecar that claims more bytes than the partial file holds is not trusted", async () => {
    const body = randomFile(128 * 1024);
    const url = server.serve("/short-partial.bin", body);
    const cacheDir = await tempDir();
    const key = `sha256-${sha256(body)}`;
    const { dm } = manager(cacheDir);
    await fs.writeFile(`${cacheDir}/partial/${key}.part`, body.subarray(0, 1000));
    const state = { version: 1, url, etag: '"x"', totalBytes: body.byteLength, acceptsRanges: true, parts: [{ start: 0, end: body.byteLength, next: 90_000 }] };
    await fs.writeFile(`${cacheDir}/partial/${key}.json`, JSON.stringify(state));
    const cached = await dm.ensure(modelFile(url, "sp.bin", { sha256: sha256(body) }));
    expect(Buffer.compare(await fs.readFile(cached.path), body)).toBe(0);
    expect(server.gets("/short-partial.bin").map((r) => r.headers.range)).toEqual(["bytes=0-"]);
  });

  test("a stall (no bytes for stallTimeoutMs) is retried and resumes", async () => {
    const body = randomFile(256 * 1024);
    const url = server.serve("/stall.bin", body, { stallAfter: 64 * 1024 });
    const { dm, warnings } = manager(await tempDir(), { stallTimeoutMs: 150 });
    const cached = await dm.ensure(modelFile(url, "stall.bin", { sha256: sha256(body) }));
    expect(Buffer.compare(await fs.readFile(cached.path), body)).toBe(0);
    expect(warnings.some((w) => (w.obj as { kind?: string }).kind === "stall")).toBe(true);
    expect(server.gets("/stall.bin")[1]!.headers.range).toBe(`bytes=${64 * 1024}-${body.byteLength - 1}`);
  });

  test("a server that always stalls fails with kind stall after the retries", async () => {
    const body = randomFile(64 * 1024);
    const url = server.serve("/stall-forever.bin", body, { stallAfter: 0, faultCount: 100 });
    const { dm } = manager(await tempDir(), { stallTimeoutMs: 80, maxRetries: 1 });
    const err = (await dm.ensure(modelFile(url, "sf.bin", { sha256: sha256(body) })).catch((e) => e)) as DownloadError;
    expect(err).toBeInstanceOf(DownloadError);
    expect(err.kind).toBe("stall");
    expect(err.message).toContain("sf.bin");
  });

  test("a cancelled download keeps its partial, and the next ensure resumes it", async () => {
    const body = randomFile(512 * 1024);
    const url = server.serve("/cancel.bin", body, { stallAfter: 128 * 1024 });
    const cacheDir = await tempDir();
    const { dm } = manager(cacheDir);
    const controller = new AbortController();
    // Cancelled once the 128 KiB the server sends before going quiet are on disk (a fixed delay after sending raced a loaded machine).
    const onProgress = (p: { bytesDone: number }) => p.bytesDone === 128 * 1024 && controller.abort(new Error("job cancelled"));
    const err = (await dm.ensure(modelFile(url, "cancel.bin", { sha256: sha256(body) }), { signal: controller.signal, onProgress }).catch((e) => e)) as DownloadError;
    expect(err.kind).toBe("cancelled");
    expect(await listFiles(`${cacheDir}/partial`)).toEqual([`sha256-${sha256(body)}.json`, `sha256-${sha256(body)}.part`]);
    const cached = await dm.ensure(modelFile(url, "cancel.bin", { sha256: sha256(body) }));
    expect(Buffer.compare(await fs.readFile(cached.path), body)).toBe(0);
    expect(server.gets("/cancel.bin")[1]!.headers.range).toBe(`bytes=${128 * 1024}-${body.byteLength - 1}`);
  });
});
