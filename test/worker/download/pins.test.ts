import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import fs from "node:fs/promises";
import { CacheLayout } from "../../../worker/download/cache-layout.js";
import { PinRegistry } from "../../../worker/download/pins.js";
import { identityTag, processStartTime, selfIdentity } from "../../../worker/process-identity.js";
import { removeTempDirs, tempDir } from "./helpers.js";

afterAll(async () => {
  await removeTempDirs();
});

/** Lets the file system finish what was started before (a few round trips through its thread pool). */
async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) await fs.stat("/");
}

describe("pin files (what other processes sharing the cache see)", () => {
  test("unpin then re-pin at once: the pin file is there afterwards (the removal cannot land after the write)", async () => {
    const layout = new CacheLayout(await tempDir());
    mkdirSync(layout.pinsDir(), { recursive: true });
    const pins = new PinRegistry(layout);
    const key = CacheLayout.keyFor("ab".repeat(32), "http://127.0.0.1:9/m.gguf");
    const file = layout.pin(key, identityTag(selfIdentity()));
    let unpin = await pins.pin(key);
    let missing = 0;
    for (let i = 0; i < 200; i++) {
      unpin();
      unpin = await pins.pin(key);
      await settle();
      if (!existsSync(file)) missing += 1;
    }
    expect(missing).toBe(0);
    unpin();
    await settle();
    await pins.idle();
    expect(existsSync(file)).toBe(false);
  });

  test("a pin whose file cannot be written throws and leaves nothing pinned", async () => {
    const layout = new CacheLayout(await tempDir());
    // No pins dir: the write fails.
    const pins = new PinRegistry(layout);
    const key = CacheLayout.keyFor("cd".repeat(32), "http://127.0.0.1:9/n.gguf");
    await expect(pins.pin(key)).rejects.toThrow();
    expect(await pins.pinned(key)).toBe(false);
  });

  test("another process's pin counts while it runs; a dead one's, even under a pid in use again, is removed", async () => {
    const layout = new CacheLayout(await tempDir());
    mkdirSync(layout.pinsDir(), { recursive: true });
    const pins = new PinRegistry(layout);
    const key = CacheLayout.keyFor("ef".repeat(32), "http://127.0.0.1:9/o.gguf");
    const me = selfIdentity();
    // Our pid with an earlier start time: the process that had this pid before us.
    const reused = layout.pin(key, identityTag({ pid: me.pid, startTime: String(BigInt(me.startTime!) - 1n) }));
    writeFileSync(reused, "");
    expect(await pins.pinned(key)).toBe(false);
    expect(existsSync(reused)).toBe(false);
    const parent = layout.pin(key, identityTag({ pid: process.ppid, startTime: processStartTime(process.ppid) }));
    writeFileSync(parent, "");
    expect(await pins.pinned(key)).toBe(true);
  });
});
