import { createHash, type Hash } from "node:crypto";
import type { PartialFile } from "./partial-file.js";
import type { PartState } from "./partial-state.js";

const READ_BACK_CHUNK = 4 * 1024 * 1024;

/**
 * Hashes a file in byte order while its ranges arrive out of order. Bytes that
 * arrive exactly at the hash cursor are hashed from memory as they stream past
 * (the common case: one stream, or the first part); bytes further ahead are
 * written only, and read back from the file (page cache) once the cursor
 * reaches them. A resumed download therefore reads its already-written prefix
 * once — the only second pass, and only when resuming or running parallel parts.
 * Memory stays one read buffer regardless of file size.
 */
export class OrderedHasher {
  private readonly hash: Hash = createHash("sha256");
  private cursor = 0;
  private reading = false;
  private buffer: Buffer | undefined;

  constructor(
    private readonly file: Pick<PartialFile, "read">,
    private readonly parts: PartState[],
  ) {}

  /** Offset up to which bytes have been hashed. */
  get position(): number {
    return this.cursor;
  }

  /** Called with each chunk about to be written at `position`: hashed now when it is next in order. */
  offer(position: number, chunk: Uint8Array): void {
    if (this.reading || position !== this.cursor) return;
    this.hash.update(chunk);
    this.cursor += chunk.byteLength;
  }

  /** Reads back and hashes whatever is written and contiguous from the cursor. */
  async catchUp(): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    try {
      for (;;) {
        const available = this.writtenFrom(this.cursor);
        if (available <= 0) return;
        this.buffer ??= Buffer.allocUnsafe(READ_BACK_CHUNK);
        const want = Math.min(available, this.buffer.byteLength);
        const { bytesRead } = await this.file.read(this.buffer, 0, want, this.cursor);
        if (bytesRead <= 0) throw new Error(`partial file is shorter than its state at offset ${this.cursor}`);
        this.hash.update(this.buffer.subarray(0, bytesRead));
        this.cursor += bytesRead;
      }
    } finally {
      this.reading = false;
    }
  }

  /** The lower-case hex digest; call once every byte is hashed. */
  digest(): string {
    return this.hash.digest("hex");
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
