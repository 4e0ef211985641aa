import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs/promises";
import { constants } from "node:fs";
import type { OpenFile, WritableFile } from "../../../worker/download/index.js";
import { BLOCK_BYTES } from "../../../worker/download/block-writer.js";
import { splitParts } from "../../../worker/download/partial-state.js";
import { FixtureServer, randomFile, sha256 } from "./fixture-server.js";
import { manager, modelFile, removeTempDirs, tempDir } from "./helpers.js";

let server: FixtureServer;
beforeAll(async () => {
  server = await FixtureServer.start();
});
afterAll(async () => {
  await server.stop();
  await removeTempDirs();
});

interface Write {
  handle: "direct" | "buffered";
  position: number;
  length: number;
}

interface Read {
  position: number;
  length: number;
}

/**
 * The real files, opened as the manager would (O_DIRECT for "direct" where this filesystem
 * takes it, else plain write-only), with every write recorded; `refuseDirect` makes direct
 * writes fail as a filesystem with other alignment rules would (EINVAL).
 */
function recordingOpenFile(writes: Write[], options: { refuseDirect?: boolean; reads?: Read[] } = {}): OpenFile {
  return async (path, flags) => {
    const direct = flags === "direct";
    const handle = direct ? await fs.open(path, constants.O_RDWR | (constants.O_DIRECT ?? 0)).catch(() => fs.open(path, "r+")) : await fs.open(path, flags);
    const file: WritableFile = {
      write: async (buf, off, len, pos) => {
        if (direct && options.refuseDirect) throw Object.assign(new Error("EINVAL: invalid argument, write"), { code: "EINVAL" });
        writes.push({ handle: direct ? "direct" : "buffered", position: pos, length: len });
        return handle.write(buf, off, len, pos);
      },
      read: async (buf, off, len, pos) => {
        const result = await handle.read(buf, off, len, pos);
        options.reads?.push({ position: pos, length: result.bytesRead });
        return result;
      },
      truncate: (len) => handle.truncate(len),
      datasync: () => handle.datasync(),
      stat: () => handle.stat(),
      close: () => handle.close(),
    };
    return file;
  };
}

/** Every byte of [0, size) written exactly once, in any order. */
function expectCovered(writes: Write[], size: number) {
  const sorted = [...writes].sort((a, b) => a.position - b.position);
  let at = 0;
  for (const w of sorted) {
    expect(w.position).toBe(at);
    at += w.length;
  }
  expect(at).toBe(size);
}

describe("the write path", () => {
  test("one stream: whole aligned blocks go to the direct handle, the file's tail to the ordinary one", async () => {
    const size = 2 * BLOCK_BYTES + 12_345;
    const body = randomFile(size);
    const url = server.serve("/direct.bin", body);
    const writes: Write[] = [];
    const { dm } = manager(await tempDir(), { openFile: recordingOpenFile(writes), parts: 1 });
    const cached = await dm.ensure(modelFile(url, "direct.bin", { sha256: sha256(body) }));
    expect(Buffer.compare(await fs.readFile(cached.path), body)).toBe(0);
    expectCovered(writes, size);
    expect(writes.filter((w) => w.handle === "direct")).toEqual([
      { handle: "direct", position: 0, length: BLOCK_BYTES },
      { handle: "direct", position: BLOCK_BYTES, length: BLOCK_BYTES },
    ]);
    expect(writes.filter((w) => w.handle === "buffered")).toEqual([{ handle: "buffered", position: 2 * BLOCK_BYTES, length: 12_345 }]);
  });

  test("a direct write the filesystem refuses (EINVAL) is written through the page cache, and the download succeeds", async () => {
    const body = randomFile(BLOCK_BYTES + 4096);
    const url = server.serve("/refused.bin", body);
    const writes: Write[] = [];
    const { dm, warnings } = manager(await tempDir(), { openFile: recordingOpenFile(writes, { refuseDirect: true }), parts: 1 });
    const cached = await dm.ensure(modelFile(url, "refused.bin", { sha256: sha256(body) }));
    expect(Buffer.compare(await fs.readFile(cached.path), body)).toBe(0);
    expect(writes.every((w) => w.handle === "buffered")).toBe(true);
    expectCovered(writes, body.byteLength);
    expect(warnings).toEqual([]);
  });

  test("directIo: false writes everything through the ordinary handle", async () => {
    const body = randomFile(BLOCK_BYTES);
    const url = server.serve("/no-direct.bin", body);
    const writes: Write[] = [];
    const { dm } = manager(await tempDir(), { openFile: recordingOpenFile(writes), directIo: false });
    await dm.ensure(modelFile(url, "no-direct.bin", { sha256: sha256(body) }));
    expect(writes.map((w) => w.handle)).toEqual(["buffered"]);
  });

  test("parallel parts: pieces start aligned, so every whole block goes direct, and the hash reads back only written bytes", async () => {
    const size = 4 * BLOCK_BYTES + 4096;
    const body = randomFile(size);
    const url = server.serve("/parts-direct.bin", body);
    const writes: Write[] = [];
    const reads: Read[] = [];
    const { dm } = manager(await tempDir(), { openFile: recordingOpenFile(writes, { reads }), parts: 4, partThresholdBytes: 1024 * 1024 });
    const cached = await dm.ensure(modelFile(url, "parts-direct.bin", { sha256: sha256(body) }));
    expect(Buffer.compare(await fs.readFile(cached.path), body)).toBe(0);
    expect(server.gets("/parts-direct.bin").length).toBeGreaterThan(1);
    expectCovered(writes, size);
    for (const w of writes) if (w.position % 4096 === 0 && w.length % 4096 === 0) expect(w).toMatchObject({ handle: "direct" });
    for (const r of reads) {
      const written = writes.filter((w) => w.position < r.position + r.length && r.position < w.position + w.length);
      expect(written.reduce((n, w) => n + Math.min(r.position + r.length, w.position + w.length) - Math.max(r.position, w.position), 0)).toBe(r.length);
    }
  });

  test("a slow server's bytes reach the disk and the progress within a fraction of a second, not a block at a time", async () => {
    const body = randomFile(256 * 1024);
    const url = server.serve("/trickle.bin", body, { bytesPerSecond: 512 * 1024 });
    const writes: Write[] = [];
    const seen: number[] = [];
    const { dm } = manager(await tempDir(), { openFile: recordingOpenFile(writes) });
    await dm.ensure(modelFile(url, "trickle.bin", { sha256: sha256(body) }), { onProgress: (p) => seen.push(p.bytesDone) });
    // Half a second of trickle: several writes and progress events on the way, not one at the end.
    expect(writes.length).toBeGreaterThanOrEqual(3);
    expect(seen.filter((n) => n > 0 && n < body.byteLength).length).toBeGreaterThanOrEqual(2);
  });

  test("parallel pieces start on 4 KiB boundaries", () => {
    for (const total of [1, 4095, 1024 * 1024 + 1, 1_000_000_007, 7 * 1024 * 1024 * 1024 + 3]) {
      const parts = splitParts(total, 4);
      expect(parts[0]!.start).toBe(0);
      expect(parts.at(-1)!.end).toBe(total);
      for (const p of parts) expect(p.start % 4096).toBe(0);
      for (let i = 1; i < parts.length; i++) expect(parts[i]!.start).toBe(parts[i - 1]!.end!);
    }
  });
});
