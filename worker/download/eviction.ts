import fs from "node:fs/promises";
import path from "node:path";
import type { CacheKey, CacheLayout } from "./cache-layout.js";
import { FileLock } from "./file-lock.js";
import type { PinRegistry } from "./pins.js";

/** A complete file in the cache, with its last use (the blob's atime, which the manager sets on every use). */
export interface BlobInfo {
  key: CacheKey;
  path: string;
  sizeBytes: number;
  lastUsedMs: number;
}

/**
 * Least-recently-used eviction of complete files. A file is removed only under
 * its key's lock (so no download or lookup of it is in flight) and only when no
 * live process pins it; busy or pinned files are skipped, never waited on.
 */
export class CacheEvictor {
  constructor(
    private readonly layout: CacheLayout,
    private readonly pins: PinRegistry,
    private readonly lockStaleMs: number,
  ) {}

  /** Every complete blob, oldest use first. */
  async list(): Promise<BlobInfo[]> {
    const out: BlobInfo[] = [];
    for (const kind of ["sha256", "url"] as const) {
      const dir = path.join(this.layout.root, "blobs", kind);
      let names: string[] = [];
      try {
        names = await fs.readdir(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        const key = this.layout.keyOfBlob(kind, name);
        if (!key) continue;
        const blob = this.layout.blob(key);
        try {
          const st = await fs.stat(blob);
          out.push({ key, path: blob, sizeBytes: st.size, lastUsedMs: st.atimeMs });
        } catch {
          // Removed meanwhile.
        }
      }
    }
    return out.sort((a, b) => a.lastUsedMs - b.lastUsedMs);
  }

  /** Removes least recently used, unpinned blobs until `done(totalBytes, freedBytes)` says enough. */
  async evictUntil(done: (totalBytes: number, freedBytes: number) => boolean): Promise<{ removed: number; freedBytes: number }> {
    const blobs = await this.list();
    let total = blobs.reduce((s, b) => s + b.sizeBytes, 0);
    let removed = 0;
    let freedBytes = 0;
    for (const blob of blobs) {
      if (done(total, freedBytes)) break;
      const lock = await new FileLock(this.layout.lock(blob.key), this.lockStaleMs).tryAcquire();
      if (!lock) continue;
      try {
        if (await this.pins.pinned(blob.key)) continue;
        await fs.rm(blob.path, { force: true });
        await fs.rm(this.layout.blobMeta(blob.key), { force: true });
        total -= blob.sizeBytes;
        freedBytes += blob.sizeBytes;
        removed++;
      } finally {
        await lock.release();
      }
    }
    return { removed, freedBytes };
  }
}

/** Marks a blob as just used (atime), which is what LRU orders by. */
export async function touchBlob(blobPath: string): Promise<void> {
  const st = await fs.stat(blobPath);
  await fs.utimes(blobPath, new Date(), st.mtime);
}
