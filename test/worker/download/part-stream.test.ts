import { afterAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import fsp from "node:fs/promises";
import path from "node:path";
import { blockPair } from "../../../worker/download/block-writer.js";
import { TransferFailure } from "../../../worker/download/errors.js";
import { HashThread } from "../../../worker/download/hash-thread.js";
import { OrderedHasher } from "../../../worker/download/ordered-hasher.js";
import { PartialFile } from "../../../worker/download/partial-file.js";
import type { PartState } from "../../../worker/download/partial-state.js";
import { streamPart } from "../../../worker/download/part-stream.js";
import { removeTempDirs, tempDir } from "./helpers.js";

afterAll(removeTempDirs);

/** A body that hands out exactly these chunks, in order, as fetch's body hands out its own. */
function bodyOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let next = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (next < chunks.length) controller.enqueue(chunks[next++]!);
      else controller.close();
    },
  });
}

/** streamPart into a real partial file with a real hash thread, as one whole part of `size` bytes. */
async function streamInto(chunks: Uint8Array[], size: number) {
  const file = await PartialFile.open((p, flags) => fsp.open(p, flags === "direct" ? "r+" : flags), path.join(await tempDir(), "part.bin"), "w+", {
    directIo: false,
    logger: { info() {}, warn() {} },
  });
  const part: PartState = { start: 0, end: size, next: 0 };
  const thread = new HashThread();
  const hasher = new OrderedHasher(file, [part], thread);
  const sink = { file, hasher, signal: new AbortController().signal, lengthCap: { bytes: size, kind: "too-large" as const, basis: "test" }, onWritten() {} };
  try {
    const outcome = await streamPart(bodyOf(chunks), part, sink, () => {}, blockPair(size, 1)).then(
      () => undefined,
      (err: unknown) => err,
    );
    const written = new Uint8Array(part.next);
    await file.read(written, 0, part.next, 0);
    return { outcome, part, written, digest: part.next === size ? await hasher.digest() : undefined };
  } finally {
    thread.close();
    await file.close();
  }
}

describe("streamPart and the received chunks", () => {
  test("a chunk that is its buffer's whole view is released once copied into a block; a view into a larger buffer is left alone", async () => {
    const whole = [randomBytes(100_000), randomBytes(70_000)].map((b) => new Uint8Array(b));
    const pool = new Uint8Array(randomBytes(50_000));
    const pooled = pool.subarray(1_000, 31_000);
    const expected = Buffer.concat([whole[0]!, pooled, whole[1]!]);
    const { outcome, written, digest } = await streamInto([whole[0]!, pooled, whole[1]!], expected.byteLength);
    expect(outcome).toBeUndefined();
    expect(Buffer.compare(written, expected)).toBe(0);
    expect(digest).toBe(createHash("sha256").update(expected).digest("hex"));
    // Released: the buffer is detached, so the memory went back when the chunk was done with, not at the next collection.
    for (const chunk of whole) expect(chunk.byteLength).toBe(0);
    expect(pooled.byteLength).toBe(30_000);
    expect(pool.byteLength).toBe(50_000);
  });

  test("a body that hands out one buffer twice fails the attempt (retryable) instead of taking the second as no bytes", async () => {
    const chunk = new Uint8Array(randomBytes(10_000));
    const { outcome, part, written } = await streamInto([chunk, chunk], 20_000);
    expect(outcome).toBeInstanceOf(TransferFailure);
    expect((outcome as TransferFailure).init).toMatchObject({ kind: "network", retryable: true });
    // What arrived before is on disk and counted, so a resume starts after it.
    expect(part.next).toBe(10_000);
    expect(written.byteLength).toBe(10_000);
  });
});
