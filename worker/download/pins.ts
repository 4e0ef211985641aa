import fs from "node:fs/promises";
import type { CacheKey, CacheLayout } from "./cache-layout.js";
import { processAlive } from "./process-alive.js";

/**
 * Which complete files are in use, so eviction never removes them. This process
 * counts its own pins; other processes sharing the cache are seen through pin
 * files (pins/<key>.<pid>), one per process per key, ignored (and cleaned up)
 * once their pid is gone.
 */
export class PinRegistry {
  private readonly counts = new Map<string, number>();

  constructor(private readonly layout: CacheLayout) {}

  /** Pins a key; the returned function unpins it (calling it twice is harmless). */
  async pin(key: CacheKey): Promise<() => void> {
    const n = this.counts.get(key.id) ?? 0;
    this.counts.set(key.id, n + 1);
    if (n === 0) await fs.writeFile(this.layout.pin(key, process.pid), "");
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.counts.get(key.id) ?? 1) - 1;
      if (left > 0) return void this.counts.set(key.id, left);
      this.counts.delete(key.id);
      void fs.rm(this.layout.pin(key, process.pid), { force: true }).catch(() => {});
    };
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
      const pid = Number(name.slice(prefix.length));
      if (pid !== process.pid && processAlive(pid)) return true;
      if (pid !== process.pid) await fs.rm(this.layout.pin(key, pid), { force: true }).catch(() => {});
    }
    return false;
  }
}
