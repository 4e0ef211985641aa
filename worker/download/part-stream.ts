import { TransferFailure, diskFailure } from "./errors.js";
import { networkFailure } from "./http-fetch.js";
import type { LengthCap } from "./length-cap.js";
import type { OrderedHasher } from "./ordered-hasher.js";
import type { WritableFile } from "./options.js";
import type { PartState } from "./partial-state.js";

/** What a part writer reports to the download it belongs to. */
export interface PartSink {
  file: WritableFile;
  hasher: OrderedHasher;
  signal: AbortSignal;
  /** How far a part without an end (no Content-Length) may run before it fails for good. */
  lengthCap: LengthCap;
  /** Called after each chunk is on disk (part.next already advanced). */
  onWritten(bytes: number): void;
}

/**
 * Streams one response body into the file from part.next on, up to part.end
 * (extra bytes are not read). Each chunk is offered to the hasher before its
 * write so in-order bytes are hashed while the write runs; part.next moves only
 * after the write completes, so the state sidecar never runs ahead of the disk.
 * A body that ends before part.end is a dropped connection (retryable); a
 * body with no end (no Content-Length) that runs past sink.lengthCap fails for
 * good (the caller deletes the partial);
 * `touch` is called per chunk received (the stall watchdog's clock).
 */
export async function streamPart(
  body: ReadableStream<Uint8Array>,
  part: PartState,
  sink: PartSink,
  touch: () => void,
): Promise<void> {
  const reader = body.getReader();
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
      if (part.end !== undefined) {
        const room = part.end - part.next;
        if (room <= 0) break;
        if (chunk.byteLength > room) chunk = chunk.subarray(0, room);
      } else if (part.next + chunk.byteLength > sink.lengthCap.bytes) {
        throw overCap(sink.lengthCap);
      }
      if (chunk.byteLength === 0) continue;
      const position = part.next;
      sink.hasher.offer(position, chunk);
      await writeFully(sink.file, chunk, position);
      part.next += chunk.byteLength;
      sink.onWritten(chunk.byteLength);
      if (part.end !== undefined && part.next >= part.end) break;
    }
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

function overCap(cap: LengthCap): TransferFailure {
  const what = `the server sent no Content-Length and the body ran past ${cap.bytes} bytes, the cap for this file (${cap.basis}); the partial file was deleted`;
  return new TransferFailure({ kind: cap.kind, retryable: false, message: cap.kind === "disk" ? `disk full: ${what}` : `too large: ${what}` });
}

async function writeFully(file: WritableFile, chunk: Uint8Array, position: number): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    let written: number;
    try {
      ({ bytesWritten: written } = await file.write(chunk, offset, chunk.byteLength - offset, position + offset));
    } catch (err) {
      throw new TransferFailure(diskFailure(err, `writing at byte ${position + offset}`) ?? { kind: "disk", retryable: false, message: `cannot write the partial file: ${(err as Error).message}`, cause: err });
    }
    if (written <= 0) throw new TransferFailure({ kind: "disk", retryable: false, message: "write made no progress" });
    offset += written;
  }
}
