import { describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { QueueStore } from "../../server/dispatch/queue-store.js";
import { OUTPUT_CHUNK_BYTES, type OutputBlobs, type VerifiedOutput } from "../../server/outputs/output-blobs.js";

/** What the shared suite needs from one storage implementation. */
export interface BlobsHarness {
  blobs: OutputBlobs;
  /** A directory for verified temp files (the output store's .tmp). */
  tmpDir: string;
  /** The queue on the same database, so that a job can reference an output the way a complete does. */
  queue: QueueStore;
  /** Inserts a QUEUED synthetic job. */
  insertJob(id: string): Promise<void>;
  /** Runs the store's sweep as if every stored output were past any grace period the store keeps. */
  sweepNow(): Promise<string[]>;
  close(): Promise<void> | void;
}

const digest = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function readAll(blobs: OutputBlobs, sha: string): Promise<{ bytes: Buffer; pieces: number; largest: number }> {
  const parts: Uint8Array[] = [];
  for await (const p of blobs.read(sha)) parts.push(p);
  return { bytes: Buffer.concat(parts), pieces: parts.length, largest: Math.max(0, ...parts.map((p) => p.byteLength)) };
}

/** The output byte store's rules, run against every store. */
export function exerciseOutputBlobs(name: string, open: () => Promise<BlobsHarness>) {
  describe(`OutputBlobs contract: ${name}`, () => {
    const withBlobs = (fn: (h: BlobsHarness) => Promise<void>) => async () => {
      const h = await open();
      try {
        await fn(h);
      } finally {
        await h.close();
      }
    };
    const inFile = (h: BlobsHarness, data: Uint8Array): VerifiedOutput => {
      const file = join(h.tmpDir, `${randomBytes(6).toString("hex")}.part`);
      writeFileSync(file, data);
      return { sha256: digest(data), size: data.byteLength, file };
    };

    test(
      "stores bytes from memory and from a temp file once per digest, and reads them back in bounded pieces",
      withBlobs(async (h) => {
        const small = new TextEncoder().encode("a small output");
        expect(await h.blobs.sizeOf(digest(small))).toBeUndefined();
        expect(await h.blobs.put({ sha256: digest(small), size: small.byteLength, bytes: small })).toBe(true);
        expect(await h.blobs.put({ sha256: digest(small), size: small.byteLength, bytes: small })).toBe(false);
        expect(await h.blobs.sizeOf(digest(small))).toBe(small.byteLength);
        expect((await readAll(h.blobs, digest(small))).bytes.toString()).toBe("a small output");

        const large = randomBytes(2 * OUTPUT_CHUNK_BYTES + 12345);
        const v = inFile(h, large);
        expect(await h.blobs.put(v)).toBe(true);
        expect(existsSync(v.file!)).toBe(false);
        const again = inFile(h, large);
        expect(await h.blobs.put(again)).toBe(false);
        expect(existsSync(again.file!)).toBe(false);
        const read = await readAll(h.blobs, digest(large));
        expect(read.bytes.equals(large)).toBe(true);
        expect(read.largest).toBeLessThanOrEqual(OUTPUT_CHUNK_BYTES);
        expect(read.pieces).toBeGreaterThanOrEqual(3);
        const empty = new Uint8Array(0);
        expect(await h.blobs.put({ sha256: digest(empty), size: 0, bytes: empty })).toBe(true);
        expect(await h.blobs.sizeOf(digest(empty))).toBe(0);
        expect((await readAll(h.blobs, digest(empty))).bytes.byteLength).toBe(0);
      }),
    );

    test(
      "the sweep removes bytes no completed job references and keeps the ones a complete committed",
      withBlobs(async (h) => {
        const kept = randomBytes(100);
        const orphan = randomBytes(100);
        await h.blobs.put({ sha256: digest(kept), size: 100, bytes: kept });
        await h.blobs.put({ sha256: digest(orphan), size: 100, bytes: orphan });
        await h.insertJob("j");
        const row = (await h.queue.claim({ workerName: "w", engines: ["synthetic"] }, Date.now(), 60_000))!;
        const outputs = JSON.stringify([{ index: 0, mimeType: "image/png", sizeBytes: "100", sha256: digest(kept) }]);
        await h.queue.complete({ jobId: "j", leaseId: row.leaseId! }, outputs, Date.now());
        expect(await h.sweepNow()).toEqual([digest(orphan)]);
        expect(await h.blobs.sizeOf(digest(orphan))).toBeUndefined();
        expect(await h.blobs.sizeOf(digest(kept))).toBe(100);
        expect(await h.sweepNow()).toEqual([]);
      }),
    );

    test(
      "a failed complete's bytes go unless a job references them",
      withBlobs(async (h) => {
        const a = randomBytes(10);
        await h.blobs.put({ sha256: digest(a), size: 10, bytes: a });
        await h.blobs.removeIfUnreferenced(digest(a));
        // Stores shared by several processes may leave it to their sweep; after it, the bytes are gone either way.
        await h.sweepNow();
        expect(await h.blobs.sizeOf(digest(a))).toBeUndefined();
      }),
    );
  });
}
