import { BlockWriter } from "./block-writer.js";
import { TransferFailure } from "./errors.js";
import type { SharedBytes } from "./hash-thread.js";
import { networkFailure } from "./http-fetch.js";
import type { LengthCap } from "./length-cap.js";
import type { OrderedHasher } from "./ordered-hasher.js";
import type { PartialFile } from "./partial-file.js";
import type { PartState } from "./partial-state.js";

/** What a part writer reports to the download it belongs to. */
export interface PartSink {
  file: PartialFile;
  hasher: OrderedHasher;
  signal: AbortSignal;
  /** How far a part without an end (no Content-Length) may run before it fails for good. */
  lengthCap: LengthCap;
  /** Called after each block is on disk (part.next already advanced). */
  onWritten(bytes: number): void;
}

/**
 * Streams one response body into the file from part.next on, up to part.end
 * (extra bytes are not read), through a BlockWriter (large writes, one in
 * flight while the next block fills, each block hashed when it is next in
 * order). When the body fails or is cancelled, what was received is still
 * written before the error goes up, so a resume starts where the bytes
 * stopped. A body that ends before part.end is a dropped connection
 * (retryable); a body with no end (no Content-Length) that runs past
 * sink.lengthCap fails for good (the caller deletes the partial);
 * `touch` is called per chunk received (the stall watchdog's clock). Each
 * chunk's memory is released once it is copied (releaseChunk).
 */
export async function streamPart(
  body: ReadableStream<Uint8Array>,
  part: PartState,
  sink: PartSink,
  touch: () => void,
  buffers: [SharedBytes, SharedBytes],
): Promise<void> {
  const reader = body.getReader();
  const writer = new BlockWriter(sink.file, part, sink.hasher, sink.onWritten, buffers);
  try {
    for (;;) {
      let result: Awaited<ReturnType<typeof reader.read>>;
      try {
        result = await reader.read();
      } catch (err) {
        throw networkFailure(err, sink.signal);
      }
      if (result.done) break;
      touch();
      let chunk = result.value;
      // A source handing out one buffer twice would otherwise arrive here empty and be skipped as if it were no bytes.
      if ((chunk.buffer as DetachableBuffer).detached)
        throw new TransferFailure({ kind: "network", retryable: true, message: "the response body gave a chunk whose memory was already released" });
      const at = writer.received;
      if (part.end !== undefined) {
        const room = part.end - at;
        if (room <= 0) break;
        if (chunk.byteLength > room) chunk = chunk.subarray(0, room);
      } else if (at + chunk.byteLength > sink.lengthCap.bytes) {
        throw overCap(sink.lengthCap);
      }
      if (chunk.byteLength === 0) continue;
      const full = writer.push(chunk);
      if (full) await full;
      releaseChunk(result.value);
      if (part.end !== undefined && writer.received >= part.end) break;
    }
    await writer.close();
  } catch (err) {
    // Keep what arrived for the resume, unless the disk is what failed or the file is about to be deleted.
    const permanent = err instanceof TransferFailure && !err.init.retryable && err.init.kind !== "cancelled";
    if (!permanent) await writer.close().catch(() => {});
    throw err;
  } finally {
    reader.cancel().catch(() => {});
  }
  if (part.end !== undefined && part.next < part.end) {
    if (sink.signal.aborted) throw networkFailure(sink.signal.reason, sink.signal);
    throw new TransferFailure({
      kind: "network",
      retryable: true,
      message: `connection closed at byte ${part.next} of range ending at ${part.end}`,
    });
  }
}

/**
 * Frees a received chunk's memory now, once its bytes are copied into a block, instead of when
 * the collector finds it: fetch hands out a new 64 KiB buffer per chunk, and JavaScriptCore
 * frees a dead one only when it sweeps, lazily on a machine with gigabytes free. Measured for
 * issue 21 (1 GiB from nginx on loopback), those chunks were most of the peak RSS and all of its
 * spread from run to run; detaching each chunk's buffer (what transferring it to a worker
 * would do) keeps the allocator reusing the same few. Only a chunk that spans its whole buffer
 * is released (a view into a larger, pooled buffer is left alone), and streamPart fails a chunk
 * that arrives already released rather than take it as zero bytes.
 */
export function releaseChunk(chunk: Uint8Array): void {
  const buffer = chunk.buffer as DetachableBuffer;
  if (!(buffer instanceof ArrayBuffer) || buffer.resizable || buffer.detached) return;
  if (chunk.byteOffset !== 0 || chunk.byteLength !== buffer.byteLength) return;
  try {
    buffer.transfer(0);
  } catch {
    // A buffer the runtime will not let go of (pinned by a native call) is left to the collector.
  }
}

/** ES2024's ArrayBuffer members (Bun has them; the project's lib setting, ES2023, does not declare them). */
type DetachableBuffer = ArrayBuffer & { readonly detached: boolean; readonly resizable: boolean; transfer(length?: number): ArrayBuffer };

function overCap(cap: LengthCap): TransferFailure {
  const what = `the server sent no Content-Length and the body ran past ${cap.bytes} bytes, the cap for this file (${cap.basis}); the partial file was deleted`;
  return new TransferFailure({ kind: cap.kind, retryable: false, message: cap.kind === "disk" ? `disk full: ${what}` : `too large: ${what}` });
}
