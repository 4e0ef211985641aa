/** The largest piece of an output one message may carry (OutputChunk.data, GetJobOutput chunks). */
export const OUTPUT_CHUNK_BYTES = 1024 * 1024;

/**
 * Output bytes that passed their size and digest check but are not stored yet:
 * held in memory (small ones) or in a closed temp file under `<dataDir>/outputs/.tmp`.
 * They enter the blob store only through `OutputBlobs.put`, which the job's complete
 * calls; anything else ends with `OutputStore.discard`.
 */
export interface VerifiedOutput {
  readonly sha256: string;
  readonly size: number;
  /** The bytes, for outputs small enough to hold in memory. */
  readonly bytes?: Uint8Array;
  /** The closed temp file holding the bytes, for larger ones. */
  readonly file?: string;
}

/**
 * Stored output bytes, content-addressed by sha256: files under the data dir next to
 * SQLite (file-blobs.ts), chunked rows in PostgreSQL so that every replica serves every
 * output (pg-blobs.ts). Both run the same suite (test/outputs/output-blobs-suite.ts).
 */
export interface OutputBlobs {
  /** The stored size of a digest, or undefined when it is not stored. */
  sizeOf(sha256: string): Promise<number | undefined>;
  /** The stored bytes in order, in pieces of at most OUTPUT_CHUNK_BYTES; never the whole output at once. */
  read(sha256: string): AsyncIterable<Uint8Array>;
  /**
   * Stores verified bytes (a temp file is consumed, memory is copied); a digest already
   * stored keeps its bytes. True when this call stored them.
   */
  put(v: VerifiedOutput): Promise<boolean>;
  /**
   * A complete that stored `sha256` (put returned true) failed: removes the bytes unless
   * a job references them. Stores shared by several processes may leave this to their sweep.
   */
  removeIfUnreferenced(sha256: string): Promise<void>;
  /** Deletes stored outputs no job references; returns the digests removed. */
  sweep(): Promise<string[]>;
}
