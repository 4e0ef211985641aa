import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { HashThread, sharedBytes } from "../../../worker/download/hash-thread.js";
import { OrderedHasher } from "../../../worker/download/ordered-hasher.js";
import type { PartState } from "../../../worker/download/partial-state.js";

/** An in-memory file whose reads wait until the test releases them, so a read-back can be caught mid-way. */
function heldFile(bytes: Uint8Array) {
  const waiting: Array<() => void> = [];
  const file = {
    async read(buffer: Uint8Array, offset: number, length: number, position: number) {
      await new Promise<void>((resolve) => waiting.push(resolve));
      const slice = bytes.subarray(position, position + length);
      buffer.set(slice, offset);
      return { bytesRead: slice.byteLength };
    },
  };
  return { file, releaseAll: () => waiting.splice(0).forEach((r) => r()), pending: () => waiting.length };
}

describe("OrderedHasher", () => {
  test("a catchUp called while a read-back runs resolves only once the bytes written before it are hashed", async () => {
    const bytes = Uint8Array.from({ length: 3000 }, (_, i) => i & 0xff);
    const { file, releaseAll, pending } = heldFile(bytes);
    // Two parts: the second is written ahead of the cursor and must be read back.
    const parts: PartState[] = [
      { start: 0, end: 1000, next: 0 },
      { start: 1000, end: 3000, next: 3000 },
    ];
    const thread = new HashThread();
    const hasher = new OrderedHasher(file, parts, thread);
    // The first part streams past the cursor and is hashed from memory.
    const first = sharedBytes(1000);
    first.set(bytes.subarray(0, 1000));
    await hasher.offer(0, first);
    parts[0]!.next = 1000;
    // A write of the first part started a read-back (as the download's onWritten does)...
    const background = hasher.catchUp();
    while (pending() === 0) await Bun.sleep(1);
    // ...and the download, finishing, asks again while that one is still reading.
    let settled = false;
    const last = hasher.catchUp().then(() => {
      settled = true;
    });
    await Bun.sleep(5);
    expect(settled).toBe(false);
    while (!settled) {
      releaseAll();
      await Bun.sleep(1);
    }
    await Promise.all([background, last]);
    expect(hasher.position).toBe(3000);
    expect(await hasher.digest()).toBe(createHash("sha256").update(bytes).digest("hex"));
    thread.close();
  });
});
