import { sharedBytes, type SharedBytes } from "./hash-thread.js";
import type { OrderedHasher } from "./ordered-hasher.js";
import type { PartialFile } from "./partial-file.js";
import type { PartState } from "./partial-state.js";

/** Bytes per block: one write each, aligned to a multiple of this in the file. */
export const BLOCK_BYTES = 4 * 1024 * 1024;
/** A block that has been filling this long is written as it is, so a slow server's bytes reach the disk (and the progress) promptly. */
export const FLUSH_AFTER_MS = 100;

const MIN_BUFFER_BYTES = 64 * 1024;

/**
 * Two block buffers: one filling while the other is being written. A connection keeps its pair
 * for every piece it fetches; a file known to be smaller than a block gets smaller buffers, and
 * so does each of several connections (a quarter of a block each: parallel parts are for servers
 * that limit each connection, and the memory stays near one stream's).
 */
export function blockPair(fileBytes: number | undefined, connections: number): [SharedBytes, SharedBytes] {
  const largest = connections > 1 ? BLOCK_BYTES / 4 : BLOCK_BYTES;
  const wanted = fileBytes === undefined ? largest : Math.ceil(fileBytes / MIN_BUFFER_BYTES) * MIN_BUFFER_BYTES;
  const size = Math.min(largest, Math.max(MIN_BUFFER_BYTES, wanted));
  return [sharedBytes(size), sharedBytes(size)];
}

/**
 * Gathers one part's body into large blocks and writes each while the next
 * fills, instead of one awaited write per network chunk (64 KiB from fetch):
 * measured for issue 21, that halved the write system calls' cost and keeps
 * the socket read going during the write. Blocks end on multiples of
 * BLOCK_BYTES in the file, so after a resume point every block is aligned for
 * a direct write. Each block is offered to the hasher just before its write
 * (in order per part, as the hasher needs); part.next moves only once the
 * write is done, so the state sidecar never runs ahead of the disk.
 */
export class BlockWriter {
  private fill: SharedBytes;
  private spare: SharedBytes;
  private filled = 0;
  /** File offset of fill[0]. */
  private fillAt: number;
  /** The last block's write and hash: the spare buffer is free once this settles. */
  private busy: Promise<unknown> = Promise.resolve();
  private queue: Promise<void> = Promise.resolve();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly file: PartialFile,
    private readonly part: PartState,
    private readonly hasher: OrderedHasher,
    private readonly onWritten: (bytes: number) => void,
    buffers: [SharedBytes, SharedBytes],
  ) {
    [this.fill, this.spare] = buffers;
    this.fillAt = part.next;
  }

  /** Offset just past the last byte received (written or not). */
  get received(): number {
    return this.fillAt + this.filled;
  }

  /**
   * Copies `chunk` into blocks, writing each block that fills. Returns a promise only when the
   * caller must wait (both blocks busy): most chunks are copied without one.
   */
  push(chunk: Uint8Array): Promise<void> | undefined {
    let rest = chunk;
    while (rest.byteLength > 0) {
      const room = this.room();
      if (room === 0) return this.pushAfterFlush(rest);
      const n = Math.min(room, rest.byteLength);
      this.fill.set(n === rest.byteLength ? rest : rest.subarray(0, n), this.filled);
      if (this.filled === 0) this.timer = setTimeout(() => void this.flush().catch(() => {}), FLUSH_AFTER_MS);
      this.filled += n;
      rest = rest.subarray(n);
    }
    return this.room() === 0 ? this.flush() : undefined;
  }

  private async pushAfterFlush(rest: Uint8Array): Promise<void> {
    if (this.filled === 0) throw new RangeError(`bytes past the end of the part at ${this.fillAt}`);
    await this.flush();
    await this.push(rest);
  }

  /** Writes whatever has been received; resolves once it is on disk and counted in part.next. */
  async close(): Promise<void> {
    try {
      await this.flush();
      await this.busy;
    } finally {
      clearTimeout(this.timer);
    }
  }

  /** Starts writing the filling block (after the previous block's write and hash have finished, which frees the spare). */
  flush(): Promise<void> {
    this.queue = this.queue.then(() => this.writeFilled());
    return this.queue;
  }

  private async writeFilled(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.filled === 0) return;
    await this.busy;
    const block = this.fill.subarray(0, this.filled);
    const at = this.fillAt;
    [this.fill, this.spare] = [this.spare, this.fill];
    this.fillAt += this.filled;
    this.filled = 0;
    const write = this.file.writeAt(block, at).then(() => {
      this.part.next = at + block.byteLength;
      this.onWritten(block.byteLength);
    });
    const hashed = this.hasher.offer(at, block);
    this.busy = hashed ? Promise.all([write, hashed]) : write;
    this.busy.catch(() => {});
  }

  /** Bytes the filling block may still take: up to the next block boundary in the file, never past the part's end. */
  private room(): number {
    const boundary = (Math.floor(this.fillAt / BLOCK_BYTES) + 1) * BLOCK_BYTES;
    let end = Math.min(boundary, this.fillAt + this.fill.byteLength);
    if (this.part.end !== undefined) end = Math.min(end, this.part.end);
    return end - this.fillAt - this.filled;
  }
}
