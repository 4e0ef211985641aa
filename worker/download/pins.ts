import fs from "node:fs/promises";
import type { CacheKey, CacheLayout } from "./cache-layout.js";
import { identityAlive, identityTag, parseIdentityTag, selfIdentity } from "../process-identity.js";

/**
 * Which complete files are in use, so eviction never removes them. This process
 * counts its own pins; other processes sharing the cache are seen through pin
 * files (pins/<key>.<pid>.<start time>, see process-identity.ts), one per process
 * per key, ignored (and cleaned up) once their process is gone: a later process
 * given the same pid does not keep a dead one's pins. The writes and removals of one pin file run one after
 * another, each making the file match the count at that moment, so an unpin's
 * removal can never land after a re-pin's write and hide the pin.
 */
export class PinRegistry {
  private readonly counts = new Map<string, number>();
  /** Per key: the last queued write or removal of its pin file. */
  private readonly fileOps = new Map<string, Promise<void>>();

  constructor(private readonly layout: CacheLayout) {}

  /** Pins a key (its pin file exists when this resolves); the returned function unpins it (calling it twice is harmless). */
  async pin(key: CacheKey): Promise<() => void> {
    const n = this.counts.get(key.id) ?? 0;
    this.counts.set(key.id, n + 1);
    try {
      await (n === 0 ? this.syncFile(key) : this.fileOps.get(key.id));
    } catch (err) {
      this.release(key);
      throw err;
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.release(key);
    };
  }

  /** Resolves once every queued pin file write and removal has run. */
  async idle(): Promise<void> {
    while (this.fileOps.size > 0) await Promise.all(this.fileOps.values());
  }

  private release(key: CacheKey): void {
    const left = (this.counts.get(key.id) ?? 1) - 1;
    if (left > 0) return void this.counts.set(key.id, left);
    this.counts.delete(key.id);
    // A failed removal leaves a file naming this live process; it goes when the process is gone (see pinned).
    this.syncFile(key).catch(() => {});
  }

  /** Queues making the pin file match the count (present while pinned, absent otherwise) behind the key's earlier operations. */
  private syncFile(key: CacheKey): Promise<void> {
    const path = this.layout.pin(key, identityTag(selfIdentity()));
    const op = (this.fileOps.get(key.id) ?? Promise.resolve()).then(() =>
      (this.counts.get(key.id) ?? 0) > 0 ? fs.writeFile(path, "") : fs.rm(path, { force: true }),
    );
    const tail = op.then(
      () => {},
      () => {},
    );
    this.fileOps.set(key.id, tail);
    void tail.then(() => {
      if (this.fileOps.get(key.id) === tail) this.fileOps.delete(key.id);
    });
    return op;
  }

  /** True when this process or any live process sharing the cache uses the key. */
  async pinned(key: CacheKey): Promise<boolean> {
    if ((this.counts.get(key.id) ?? 0) > 0) return true;
    const prefix = `${key.id}.`;
    let names: string[];
    try {
      names = await fs.readdir(this.layout.pinsDir());
    } catch {
      return false;
    }
    for (const name of names) {
      if (!name.startsWith(prefix)) continue;
      const tag = name.slice(prefix.length);
      if (tag === identityTag(selfIdentity())) continue;
      const holder = parseIdentityTag(tag);
      if (holder && identityAlive(holder)) return true;
      await fs.rm(this.layout.pin(key, tag), { force: true }).catch(() => {});
    }
    return false;
  }
}
