import { describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { HashThread, HashThreadPool, sharedBytes } from "../../../worker/download/hash-thread.js";

const hex = (...parts: Uint8Array[]) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
};

function shared(bytes: Uint8Array) {
  const out = sharedBytes(bytes.byteLength);
  out.set(bytes);
  return out;
}

describe("the hash thread", () => {
  test("updates from shared memory, in order, give node:crypto's digest; a digest starts a new hash", async () => {
    const thread = new HashThread();
    try {
      const a = randomBytes(1 << 20);
      const b = randomBytes(12_345);
      const whole = shared(Buffer.concat([a, b]));
      await Promise.all([thread.update(whole.subarray(0, a.byteLength)), thread.update(whole.subarray(a.byteLength))]);
      expect(await thread.digest()).toBe(hex(a, b));
      expect(await thread.digest()).toBe(hex());
    } finally {
      thread.close();
    }
  });

  test("reset drops what came before it", async () => {
    const thread = new HashThread();
    try {
      const before = shared(randomBytes(1000));
      const after = shared(randomBytes(1000));
      void thread.update(before);
      await thread.reset();
      await thread.update(after);
      expect(await thread.digest()).toBe(hex(after));
    } finally {
      thread.close();
    }
  });

  test("close rejects what is pending and every later call", async () => {
    const thread = new HashThread();
    const pending = thread.update(shared(randomBytes(4 << 20)));
    thread.close();
    expect(thread.failed).toBe(true);
    await expect(pending).rejects.toThrow("hash thread closed");
    await expect(thread.digest()).rejects.toThrow("hash thread closed");
  });

  test("the pool lends an idle thread again and closes a failed one", async () => {
    const pool = new HashThreadPool(1);
    const first = pool.acquire();
    await first.update(shared(randomBytes(10)));
    pool.release(first);
    const again = pool.acquire();
    expect(again).toBe(first);
    // A thread lent again starts from a reset, as OrderedHasher does.
    await again.reset();
    expect(await again.digest()).toBe(hex());
    again.close();
    pool.release(again);
    const fresh = pool.acquire();
    expect(fresh).not.toBe(again);
    fresh.close();
  });
});
