import { randomUUID } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { identityAlive, selfIdentity } from "../process-identity.js";

/** What a lock file records about its holder. */
interface LockRecord {
  pid: number;
  /** The holder's start time (process-identity.ts): tells a reused pid from the holder. */
  startTime?: string;
  host: string;
  token: string;
  createdMs: number;
}

/** A held lock: heartbeats keep it fresh until release(). */
export interface HeldLock {
  release(): Promise<void>;
}

/**
 * A cross-process lock made of an exclusively created file. The holder touches
 * it every lockStaleMs/4; a waiter takes it over when the holder is gone (same
 * host: its pid and start time no longer name a live process, as after a crash or
 * a container restart that reused its pid) or its heartbeat is older than lockStaleMs, so a crashed worker
 * never blocks the cache. Takeover renames the stale file aside first and checks
 * it really was the stale one, so two waiters cannot both take it.
 */
export class FileLock {
  constructor(
    private readonly path: string,
    private readonly staleMs: number,
    private readonly pollMs = 100,
  ) {}

  /** Waits for the lock (polling), taking over stale ones; rejects (an AbortError) when the signal aborts. */
  async acquire(signal?: AbortSignal): Promise<HeldLock> {
    for (;;) {
      signal?.throwIfAborted();
      const held = await this.tryAcquire();
      if (held) return held;
      await sleep(this.pollMs, undefined, { signal });
    }
  }

  /** Takes the lock if it is free or stale, else returns undefined at once. */
  async tryAcquire(): Promise<HeldLock | undefined> {
    const record: LockRecord = { ...selfIdentity(), host: os.hostname(), token: randomUUID(), createdMs: Date.now() };
    try {
      await fs.writeFile(this.path, JSON.stringify(record), { flag: "wx" });
      return this.held(record);
    } catch (err) {
      if ((err as { code?: string }).code !== "EEXIST") throw err;
    }
    if (await this.takeOverIfStale()) return this.tryAcquire();
    return undefined;
  }

  private async takeOverIfStale(): Promise<boolean> {
    const seen = await readLock(this.path);
    if (seen === "gone") return true;
    if (!this.isStale(seen)) return false;
    const aside = `${this.path}.${process.pid}.${randomUUID()}.stale`;
    try {
      await fs.rename(this.path, aside);
    } catch {
      return true;
    }
    const moved = await readLock(aside);
    const sameLock = moved !== "gone" && moved.record?.token === seen.record?.token;
    if (!sameLock && moved !== "gone" && !this.isStale(moved)) {
      // We moved a fresh lock someone took in between; put it back unless a third party holds the path.
      await fs.link(aside, this.path).catch(() => {});
    }
    await fs.rm(aside, { force: true });
    return true;
  }

  private isStale({ record, mtimeMs }: ReadLock): boolean {
    if (record && record.host === os.hostname() && !identityAlive(record)) return true;
    return Date.now() - mtimeMs > this.staleMs;
  }

  private held(record: LockRecord): HeldLock {
    const beat = setInterval(() => {
      const now = new Date();
      fs.utimes(this.path, now, now).catch(() => {});
    }, Math.max(10, this.staleMs / 4));
    beat.unref?.();
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        clearInterval(beat);
        const current = await readLock(this.path);
        if (current !== "gone" && current.record?.token === record.token) await fs.rm(this.path, { force: true });
      },
    };
  }
}

interface ReadLock {
  record: LockRecord | undefined;
  mtimeMs: number;
}

/** Reads a lock file: "gone" if missing, else its mtime and record (undefined while unreadable: being written or corrupt). */
async function readLock(path: string): Promise<ReadLock | "gone"> {
  let mtimeMs: number;
  try {
    mtimeMs = (await fs.stat(path)).mtimeMs;
  } catch {
    return "gone";
  }
  try {
    const record = JSON.parse(await fs.readFile(path, "utf8")) as LockRecord;
    const valid = typeof record.pid === "number" && typeof record.token === "string";
    return { record: valid ? record : undefined, mtimeMs };
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return "gone";
    return { record: undefined, mtimeMs };
  }
}

