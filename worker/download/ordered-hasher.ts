import type { HashThread, SharedBytes } from "./hash-thread.js";
import { sharedBytes } from "./hash-thread.js";
import type { PartialFile } from "./partial-file.js";
import type { PartState } from "./partial-state.js";

const READ_BACK_BYTES = 1024 * 1024;

/**
 * Hashes a file in byte order while its ranges arrive out of order, on a
 * HashThread. Blocks that arrive exactly at the hash cursor are hashed from
 * memory as they stream past (the common case: one stream, or the piece at the
 * cursor while later pieces land); blocks further ahead are written only, and
 * read back from the file once the cursor reaches them. A resumed download
 * therefore reads its already-written prefix once — the only second pass, and
 * only when resuming or running parallel parts. Memory stays two read buffers
 * regardless of file size.
 */
export class OrderedHasher {
  private cursor = 0;
  private reading = false;
  private running: Promise<void> | undefined;
  private readBuffers: [SharedBytes, SharedBytes] | undefined;
  private readonly started: Promise<void>;

  constructor(
    private readonly file: Pick<PartialFile, "read">,
    private readonly parts: PartState[],
    private readonly thread: HashThread,
  ) {
    this.started = thread.reset();
    this.started.catch(() => {});
  }

  /** Offset up to which bytes have been handed to the hash. */
  get position(): number {
    return this.cursor;
  }

  /**
   * Called with each block as its write starts at `position`: taken when it is next in order.
   * Returns when the hash thread has read the block (the caller must not reuse it before), or undefined when not taken.
   */
  offer(position: number, block: SharedBytes): Promise<void> | undefined {
    if (this.reading || position !== this.cursor) return undefined;
    this.cursor += block.byteLength;
    return this.thread.update(block);
  }

  /**
   * Reads back and hashes whatever is written and contiguous from the cursor (a read overlaps the
   * previous block's hash). A call made while a read-back runs waits for it and then reads on, so
   * that when it resolves every byte written before the call is hashed: a download finishing during
   * a background read-back must not see that run's cursor ("hashed X of Y bytes", then a retry).
   */
  async catchUp(): Promise<void> {
    while (this.running) await this.running;
    this.running = this.readBack().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async readBack(): Promise<void> {
    this.reading = true;
    try {
      let hashing: Promise<void> = Promise.resolve();
      for (let turn = 0; ; turn ^= 1) {
        const available = this.writtenFrom(this.cursor);
        if (available <= 0) break;
        // Only resumes and parallel parts read back; a single stream never allocates these.
        this.readBuffers ??= [sharedBytes(READ_BACK_BYTES), sharedBytes(READ_BACK_BYTES)];
        const buffer = this.readBuffers[turn]!;
        const want = Math.min(available, buffer.byteLength);
        const { bytesRead } = await this.file.read(buffer, 0, want, this.cursor);
        if (bytesRead <= 0) throw new Error(`partial file is shorter than its state at offset ${this.cursor}`);
        // The other buffer is read into next: its hash must be done first.
        await hashing;
        hashing = this.thread.update(buffer.subarray(0, bytesRead));
        this.cursor += bytesRead;
      }
      await hashing;
    } finally {
      this.reading = false;
    }
  }

  /** The lower-case hex digest; call once every byte is hashed. */
  async digest(): Promise<string> {
    await this.started;
    return this.thread.digest();
  }

  private writtenFrom(offset: number): number {
    for (const part of this.parts) {
      const end = part.end ?? Number.POSITIVE_INFINITY;
      if (offset >= part.start && offset < end) return part.next - offset;
      if (offset === part.start && part.end === part.start) continue;
    }
    return 0;
  }
}
