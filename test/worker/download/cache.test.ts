import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs/promises";
import os from "node:os";
import { ModelFileRole } from "../../../gen/studio/v1/model_pb.js";
import { DownloadError, type DownloadManagerOptions, type DownloadProgress } from "../../../worker/download/index.js";
import { FixtureServer, randomFile, sha256, serveBytes } from "./fixture-server.js";
import { selfIdentity } from "../../../worker/process-identity.js";
import { linkWorkDir } from "../../../worker/download/work-dir.js";
import { listFiles, manager, modelFile, removeTempDirs, tempDir } from "./helpers.js";

let server: FixtureServer;
beforeAll(async () => {
  server = await FixtureServer.start();
});
afterAll(async () => {
  await server.stop();
  await removeTempDirs();
});

async function deadPid(): Promise<number> {
  const child = Bun.spawn(["true"]);
  await child.exited;
  return child.pid;
}

describe("one download per file", () => {
  test("two concurrent ensure() calls in one process share one download and one path", async () => {
    const body = randomFile(512 * 1024);
    const url = server.serve("/concurrent.bin", body, { bytesPerSecond: 4 * 1024 * 1024 });
    const { dm } = manager(await tempDir());
    const file = modelFile(url, "c.bin", { sha256: sha256(body) });
    const seen: number[] = [];
    const [a, b] = await Promise.all([dm.ensure(file), dm.ensure(file, { onProgress: (p) => seen.push(p.bytesDone) })]);
    expect(a.path).toBe(b.path);
    expect(server.gets("/concurrent.bin").length).toBe(1);
    expect(seen.at(-1)).toBe(body.byteLength);
  });

  test("two managers on one cache dir (as two worker processes would be) download once", async () => {
    const body = randomFile(512 * 1024);
    const url = server.serve("/two-managers.bin", body, { bytesPerSecond: 4 * 1024 * 1024 });
    const cacheDir = await tempDir();
    const file = modelFile(url, "t.bin", { sha256: sha256(body) });
    const [a, b] = await Promise.all([manager(cacheDir).dm.ensure(file), manager(cacheDir).dm.ensure(file)]);
    expect(a.path).toBe(b.path);
    expect(server.gets("/two-managers.bin").length).toBe(1);
  });

  test("a lock left by a dead pid is taken over at once", async () => {
    const body = randomFile(10 * 1024);
    const url = server.serve("/stale-pid.bin", body);
    const cacheDir = await tempDir();
    const { dm } = manager(cacheDir, { lockStaleMs: 3_600_000 });
    const pid = await deadPid();
    await fs.writeFile(`${cacheDir}/locks/sha256-${sha256(body)}.lock`, JSON.stringify({ pid, host: os.hostname(), token: "old", createdMs: 0 }));
    const cached = await dm.ensure(modelFile(url, "sp.bin", { sha256: sha256(body) }));
    expect(cached.sizeBytes).toBe(body.byteLength);
    expect(await listFiles(`${cacheDir}/locks`)).toEqual([]);
  });

  test("a lock whose heartbeat is older than lockStaleMs is taken over even if its pid exists", async () => {
    const body = randomFile(10 * 1024);
    const url = server.serve("/stale-age.bin", body);
    const cacheDir = await tempDir();
    const { dm } = manager(cacheDir, { lockStaleMs: 1_000 });
    const lock = `${cacheDir}/locks/sha256-${sha256(body)}.lock`;
    await fs.writeFile(lock, JSON.stringify({ pid: 1, host: os.hostname(), token: "old", createdMs: 0 }));
    const hourAgo = new Date(Date.now() - 3_600_000);
    await fs.utimes(lock, hourAgo, hourAgo);
    const cached = await dm.ensure(modelFile(url, "sa.bin", { sha256: sha256(body) }));
    expect(cached.sizeBytes).toBe(body.byteLength);
  });

  test("a lock with our own pid but another process start (a restarted container) is taken over", async () => {
    const body = randomFile(10 * 1024);
    const url = server.serve("/stale-boot.bin", body);
    const cacheDir = await tempDir();
    const { dm } = manager(cacheDir, { lockStaleMs: 3_600_000 });
    // Our pid, but a start time before ours: an earlier process that had our pid.
    const record = { pid: process.pid, startTime: String(BigInt(selfIdentity().startTime!) - 1n), host: os.hostname(), token: "earlier", createdMs: Date.now() };
    await fs.writeFile(`${cacheDir}/locks/sha256-${sha256(body)}.lock`, JSON.stringify(record));
    const cached = await dm.ensure(modelFile(url, "sb.bin", { sha256: sha256(body) }));
    expect(cached.sizeBytes).toBe(body.byteLength);
  });

  test("a live, fresh lock is waited on; cancelling the wait is reported as cancelled", async () => {
    const body = randomFile(10 * 1024);
    const url = server.serve("/held.bin", body);
    const cacheDir = await tempDir();
    const { dm } = manager(cacheDir);
    await fs.writeFile(`${cacheDir}/locks/sha256-${sha256(body)}.lock`, JSON.stringify({ pid: 1, host: os.hostname(), token: "live", createdMs: Date.now() }));
    const controller = new AbortController();
    const pending = dm.ensure(modelFile(url, "h.bin", { sha256: sha256(body) }), { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("give up")), 100);
    const err = (await pending.catch((e) => e)) as DownloadError;
    expect(err.kind).toBe("cancelled");
    expect(server.gets("/held.bin").length).toBe(0);
  });
});

describe("cache budget", () => {
  test("LRU eviction under the budget never removes a pinned file", async () => {
    const files = ["a", "b", "c"].map((n) => ({ name: n, body: randomFile(100 * 1024) }));
    const urls = files.map((f) => server.serve(`/lru-${f.name}.bin`, f.body));
    const cacheDir = await tempDir();
    const { dm } = manager(cacheDir, { cacheMaxBytes: 250 * 1024 });
    const mf = (i: number) => modelFile(urls[i]!, `${files[i]!.name}.bin`, { sha256: sha256(files[i]!.body) });
    const a = await dm.ensure(mf(0));
    const b = await dm.ensure(mf(1));
    b.release();
    const c = await dm.ensure(mf(2));
    // a is the least recently used, but pinned: b goes instead.
    expect(dm.cachedDigests().sort()).toEqual([sha256(files[0]!.body), sha256(files[2]!.body)].sort());
    await fs.access(a.path);
    expect(await dm.evictOnce()).toEqual({ removed: 0, freedBytes: 0 });
    a.release();
    c.release();
    const again = await dm.ensure(mf(1));
    expect(server.gets("/lru-b.bin").length).toBe(2);
    expect(dm.cachedDigests()).toEqual([sha256(files[1]!.body), sha256(files[2]!.body)].sort());
    again.release();
  });

  test("a file pinned by another live process is not evicted", async () => {
    const body = randomFile(50 * 1024);
    const url = server.serve("/pinned-elsewhere.bin", body);
    const cacheDir = await tempDir();
    const first = manager(cacheDir).dm;
    const cached = await first.ensure(modelFile(url, "pe.bin", { sha256: sha256(body) }));
    cached.release();
    await fs.writeFile(`${cacheDir}/pins/sha256-${sha256(body)}.1`, "");
    const { dm } = manager(cacheDir, { cacheMaxBytes: 0 });
    expect(await dm.evictOnce()).toEqual({ removed: 0, freedBytes: 0 });
    await fs.writeFile(`${cacheDir}/pins/sha256-${sha256(body)}.${await deadPid()}`, "");
    await fs.rm(`${cacheDir}/pins/sha256-${sha256(body)}.1`);
    expect(await dm.evictOnce()).toEqual({ removed: 1, freedBytes: body.byteLength });
    expect(await listFiles(`${cacheDir}/pins`)).toEqual([]);
  });
});

describe("work dirs", () => {
  test("ensureAll + linkWorkDir: links by filename, loras in their own dir, aggregate progress", async () => {
    const parts = [
      { role: ModelFileRole.DIFFUSION_MODEL, name: "z_image_turbo-Q4_K.gguf", body: randomFile(64 * 1024) },
      { role: ModelFileRole.VAE, name: "ae.safetensors", body: randomFile(32 * 1024) },
      { role: ModelFileRole.LORA, name: "style.safetensors", body: randomFile(16 * 1024) },
    ];
    const files = parts.map((p) => modelFile(server.serve(`/wd/${p.name}`, p.body), p.name, { sha256: sha256(p.body), role: p.role }));
    const { dm } = manager(await tempDir());
    const events: DownloadProgress[] = [];
    const cached = await dm.ensureAll(files, { onProgress: (p) => events.push(p) });
    const total = parts.reduce((s, p) => s + p.body.byteLength, 0);
    expect(events.at(-1)).toMatchObject({ bytesDone: total, bytesTotal: total, verified: true });
    const workDir = await tempDir("dl-work-");
    const links = await linkWorkDir(workDir, files.map((file, i) => ({ file, cached: cached[i]! })));
    expect(links.loraDir).toBe(`${workDir}/loras`);
    expect(links.files.map((f) => f.path)).toEqual([
      `${workDir}/models/z_image_turbo-Q4_K.gguf`,
      `${workDir}/models/ae.safetensors`,
      `${workDir}/loras/style.safetensors`,
    ]);
    for (const [i, f] of links.files.entries()) expect(Buffer.compare(await fs.readFile(f.path), parts[i]!.body)).toBe(0);
    for (const c of cached) c.release();
  });

  test("linkWorkDir refuses names that are not bare file names, before making any link", async () => {
    const body = randomFile(1024);
    const good = modelFile(server.serve("/wd/good.bin", body), "good.bin", { sha256: sha256(body) });
    const { dm } = manager(await tempDir());
    const cached = await dm.ensure(good);
    for (const bad of ["../escape.bin", "sub/dir.bin", "..", "", "nul\u0000.bin"]) {
      const workDir = await tempDir("dl-work-");
      const err = (await linkWorkDir(workDir, [{ file: good, cached }, { file: { ...good, filename: bad }, cached }]).catch((e) => e)) as DownloadError;
      expect(err).toBeInstanceOf(DownloadError);
      expect(err.kind).toBe("invalid");
      expect(await fs.readdir(workDir)).toEqual([]);
    }
  });

  test("ensureAll: one permanent failure cancels the rest and is the error reported", async () => {
    const slow = randomFile(256 * 1024);
    const files = [
      modelFile(server.serve("/all/slow.bin", slow, { bytesPerSecond: 256 * 1024 }), "slow.bin", { sha256: sha256(slow) }),
      modelFile(`${server.origin}/all/missing.bin`, "missing.bin"),
    ];
    const { dm } = manager(await tempDir());
    const err = (await dm.ensureAll(files).catch((e) => e)) as DownloadError;
    expect(err).toMatchObject({ kind: "http", status: 404, filename: "missing.bin" });
  });
});

describe("full disk", () => {
  const limit = 1024 * 1024;

  async function mountTmpfs(): Promise<{ dir: string; cleanup: () => Promise<void> } | undefined> {
    const dir = await tempDir("dl-tmpfs-");
    const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir], { stderr: "ignore" });
    if (mount.exitCode !== 0) return undefined;
    return { dir, cleanup: async () => void Bun.spawnSync(["umount", dir]) };
  }

  /** A 1 MiB disk simulated at the write layer (both the ordinary and the direct handle) and in statfs, for machines where tmpfs cannot be mounted. */
  function simulatedDisk(): Partial<DownloadManagerOptions> {
    let written = 0;
    return {
      freeBytes: async () => limit - written,
      openFile: async (p, flags) => {
        const h = await fs.open(p, flags === "direct" ? "r+" : flags);
        return {
          write: async (buf, off, len, pos) => {
            if (written + len > limit) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
            written += len;
            return h.write(buf, off, len, pos);
          },
          read: (buf, off, len, pos) => h.read(buf, off, len, pos),
          truncate: (len) => h.truncate(len),
          datasync: () => h.datasync(),
          stat: () => h.stat(),
          close: () => h.close(),
        };
      },
    };
  }

  async function expectFullDisk(cacheDir: string, options: Partial<DownloadManagerOptions>, tag: string) {
    const body = randomFile(2 * 1024 * 1024);
    const sized = server.serve(`/${tag}/big-sized.bin`, body);
    const chunked = server.serve(`/${tag}/big-chunked.bin`, body, { chunked: true, ranges: false });
    const { dm } = manager(cacheDir, options);
    const early = (await dm.ensure(modelFile(sized, "big.bin", { sha256: sha256(body) })).catch((e) => e)) as DownloadError;
    expect(early).toMatchObject({ kind: "disk", retryable: false });
    expect(early.message).toContain("not enough disk space");
    expect(early.message).toContain("big.bin");
    expect(server.gets(`/${tag}/big-sized.bin`).length).toBe(1);

    const mid = (await dm.ensure(modelFile(chunked, "big2.bin", { sha256: sha256(body) })).catch((e) => e)) as DownloadError;
    expect(mid).toMatchObject({ kind: "disk", retryable: false });
    expect(mid.message).toContain("disk full");
    expect(server.gets(`/${tag}/big-chunked.bin`).length).toBe(1);
    expect(await listFiles(`${cacheDir}/partial`)).toEqual([]);
    expect(dm.cachedDigests()).toEqual([]);
  }

  test("on a 1 MiB tmpfs (when mount is permitted): fails early by Content-Length, and on ENOSPC mid-write, leaving no partial", async () => {
    const disk = await mountTmpfs();
    if (!disk) return console.warn("tmpfs cannot be mounted here; the simulated-disk test covers this");
    try {
      await expectFullDisk(`${disk.dir}/cache`, {}, "tmpfs");
    } finally {
      await disk.cleanup();
    }
  });

  test("with ENOSPC injected at the write layer: the same", async () => {
    await expectFullDisk(await tempDir(), simulatedDisk(), "simulated");
  });
});
