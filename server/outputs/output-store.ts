import { createHash, randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { isSha256Hex } from "../../contract/hex.js";
import { FileBlobs, type OutputReferences } from "./file-blobs.js";
import { OUTPUT_CHUNK_BYTES, type OutputBlobs, type VerifiedOutput } from "./output-blobs.js";
import { OutputError } from "./output-error.js";

export { OUTPUT_CHUNK_BYTES, type VerifiedOutput } from "./output-blobs.js";
/**
 * Outputs up to this size are held in memory while they arrive and written in one go
 * once verified (none at all when the digest is already stored), instead of a temp file
 * opened when the first chunk arrives; larger ones stream to their temp file.
 */
export const IN_MEMORY_OUTPUT_BYTES = 1024 * 1024;

const NO_REFERENCES: OutputReferences = { isReferenced: () => false, referencedDigests: () => new Set() };

/**
 * Job outputs on their way in and out. Bytes arrive in a temp file under
 * `<dataDir>/outputs/.tmp` (or memory), are checked against the size and sha256 the
 * worker announced, and wait there until the job completes; only then do they enter
 * the content-addressed blob store (files beside SQLite, rows in PostgreSQL), so a
 * reader never sees a partial or unverified output, equal outputs are kept once, and
 * a job that never completes leaves nothing in the store.
 */
export class OutputStore {
  readonly root: string;
  readonly #tmp: string;
  readonly blobs: OutputBlobs;

  constructor(
    dataDir: string,
    readonly maxOutputBytes: number,
    blobs?: OutputBlobs,
  ) {
    this.root = join(dataDir, "outputs");
    this.#tmp = join(this.root, ".tmp");
    // Nothing is in flight before the studio serves, so what is left here is from a crash.
    rmSync(this.#tmp, { recursive: true, force: true });
    mkdirSync(this.#tmp, { recursive: true });
    this.blobs = blobs ?? new FileBlobs(this.root, NO_REFERENCES, this.#tmp);
  }

  /** Whether an output with this digest is stored. */
  async has(sha256: string): Promise<boolean> {
    return isSha256Hex(sha256) && (await this.blobs.sizeOf(sha256.toLowerCase())) !== undefined;
  }

  /** The stored size of a digest, or undefined. */
  sizeOf(sha256: string): Promise<number | undefined> {
    return this.blobs.sizeOf(sha256.toLowerCase());
  }

  /** A stored output's bytes, in chunks of at most OUTPUT_CHUNK_BYTES. */
  openRead(sha256: string): AsyncIterable<Uint8Array> {
    if (!isSha256Hex(sha256)) throw new OutputError("invalid_argument", `sha256 must be 64 hex digits (got ${JSON.stringify(sha256)})`);
    return this.blobs.read(sha256.toLowerCase());
  }

  /** Starts an upload of `size` bytes whose digest must be `sha256`; refuses sizes over the limit up front. */
  begin(size: number, sha256: string): OutputUpload {
    if (!isSha256Hex(sha256))
      throw new OutputError("invalid_argument", `sha256 must be 64 hex digits (got ${JSON.stringify(sha256)})`);
    if (!Number.isSafeInteger(size) || size < 0)
      throw new OutputError("invalid_argument", `total_size must be a byte count (got ${size})`);
    if (size > this.maxOutputBytes)
      throw new OutputError(
        "resource_exhausted",
        `output of ${size} bytes is over the studio's limit of ${this.maxOutputBytes} bytes`,
      );
    const tmp = join(this.#tmp, `${randomBytes(12).toString("hex")}.part`);
    return new OutputUpload(this, tmp, size, sha256.toLowerCase());
  }

  /** Checks a whole output held in memory (the polling API's inline outputs); nothing is stored yet. */
  verify(data: Uint8Array, sha256: string): VerifiedOutput {
    const upload = this.begin(data.byteLength, sha256);
    try {
      upload.write(0, data);
      return upload.finish();
    } catch (err) {
      upload.abort();
      throw err;
    }
  }

  /** Verifies and stores at once (tools and tests; dispatch stages and promotes on complete). */
  async put(data: Uint8Array, sha256: string): Promise<void> {
    await this.promote(this.verify(data, sha256));
  }

  /**
   * Moves verified bytes into the blob store; a digest already stored keeps its bytes
   * (a temp file is removed either way). True when this call stored them.
   */
  promote(v: VerifiedOutput): Promise<boolean> {
    return this.blobs.put(v);
  }

  /** Moves verified bytes held in memory to a temp file (staging past its memory budget); files pass through. */
  spill(v: VerifiedOutput): VerifiedOutput {
    if (v.file !== undefined) return v;
    const file = join(this.#tmp, `${randomBytes(12).toString("hex")}.part`);
    writeFileSync(file, v.bytes ?? new Uint8Array(), { flag: "wx", mode: 0o600 });
    return { sha256: v.sha256, size: v.size, file };
  }

  /** Forgets verified bytes that will not be stored (their temp file, if any, is removed). */
  discard(v: VerifiedOutput): void {
    if (v.file !== undefined) rmSync(v.file, { force: true });
  }
}

/**
 * One output being received: chunks must come in order (each offset equal to the
 * bytes received so far) and never past the announced size. `finish` checks size
 * and digest and hands back the verified bytes (not yet stored); every failure
 * removes the temp file.
 */
export class OutputUpload {
  readonly #hash = createHash("sha256");
  #fd: number | undefined;
  /** The bytes so far, for outputs small enough to hold in memory (undefined: streamed to the temp file). */
  readonly #chunks: Uint8Array[] | undefined;
  #received = 0;
  #done = false;

  constructor(
    readonly store: OutputStore,
    readonly tmpPath: string,
    readonly size: number,
    readonly sha256: string,
  ) {
    this.#chunks = size <= IN_MEMORY_OUTPUT_BYTES ? [] : undefined;
  }

  get received(): number {
    return this.#received;
  }

  /** Whether every announced byte has arrived. */
  get complete(): boolean {
    return this.#received === this.size;
  }

  /** Appends a chunk at `offset`; out-of-order, oversized or post-finish chunks abort the upload. */
  write(offset: number, data: Uint8Array): void {
    try {
      if (this.#done) throw new OutputError("failed_precondition", "output upload already finished");
      if (data.byteLength > OUTPUT_CHUNK_BYTES)
        throw new OutputError("invalid_argument", `chunk of ${data.byteLength} bytes is over ${OUTPUT_CHUNK_BYTES}`);
      if (offset !== this.#received)
        throw new OutputError("invalid_argument", `chunk offset ${offset} does not follow the ${this.#received} bytes received`);
      if (this.#received + data.byteLength > this.size)
        throw new OutputError(
          "invalid_argument",
          `chunks carry more than the announced total_size of ${this.size} bytes`,
        );
      if (this.#chunks) this.#chunks.push(data.slice());
      else {
        this.#fd ??= openSync(this.tmpPath, "wx", 0o600);
        let written = 0;
        while (written < data.byteLength) written += writeSync(this.#fd, data, written, data.byteLength - written);
      }
      this.#hash.update(data);
      this.#received += data.byteLength;
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /** Verifies size and digest; the result goes to the store only through OutputStore.promote. */
  finish(): VerifiedOutput {
    try {
      if (this.#done) throw new OutputError("failed_precondition", "output upload already finished");
      if (this.#received !== this.size)
        throw new OutputError("invalid_argument", `received ${this.#received} bytes, total_size says ${this.size}`);
      const actual = this.#hash.digest("hex");
      if (actual !== this.sha256)
        throw new OutputError("invalid_argument", `sha256 of the bytes is ${actual}, the worker said ${this.sha256}`);
      let verified: VerifiedOutput;
      if (this.#chunks) {
        const bytes = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
        this.#chunks.length = 0;
        verified = { sha256: this.sha256, size: this.size, bytes };
      } else {
        this.#fd ??= openSync(this.tmpPath, "wx", 0o600);
        closeSync(this.#fd);
        this.#fd = undefined;
        verified = { sha256: this.sha256, size: this.size, file: this.tmpPath };
      }
      this.#done = true;
      return verified;
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /** Drops the upload and its temp file; safe to call more than once. */
  abort(): void {
    this.#done = true;
    if (this.#chunks) this.#chunks.length = 0;
    if (this.#fd !== undefined) {
      try {
        closeSync(this.#fd);
      } catch {
        // Already closed.
      }
      this.#fd = undefined;
    }
    rmSync(this.tmpPath, { force: true });
  }
}
