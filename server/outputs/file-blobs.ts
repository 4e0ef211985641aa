import { createReadStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { isSha256Hex } from "../../contract/hex.js";
import { OutputError } from "./output-error.js";
import { OUTPUT_CHUNK_BYTES, type OutputBlobs, type VerifiedOutput } from "./output-blobs.js";

/** Which digests job rows reference, read from the database the files belong to. */
export interface OutputReferences {
  isReferenced(sha256: string): boolean;
  /** Every digest some job row names. */
  referencedDigests(): Set<string>;
}

/**
 * Output bytes as files under `<dataDir>/outputs/<sha[0:2]>/<sha>`, beside the SQLite
 * file. A put renames a verified temp file into place (or writes memory to a temp file
 * and renames it), so a reader never sees a partial file and equal outputs are kept once.
 */
export class FileBlobs implements OutputBlobs {
  /** Shard directories known to exist, so a put does not ask the filesystem each time. */
  readonly #shards = new Set<string>();

  constructor(
    readonly root: string,
    readonly refs: OutputReferences,
    /** Where memory is written before its rename (the output store's temp dir). */
    readonly tmpDir: string = join(root, ".tmp"),
  ) {
    mkdirSync(root, { recursive: true });
  }

  /** Where the bytes of a digest live (whether or not they are stored). */
  pathOf(sha256: string): string {
    if (!isSha256Hex(sha256)) throw new OutputError("invalid_argument", `sha256 must be 64 hex digits (got ${JSON.stringify(sha256)})`);
    const sha = sha256.toLowerCase();
    return join(this.root, sha.slice(0, 2), sha);
  }

  async sizeOf(sha256: string): Promise<number | undefined> {
    if (!isSha256Hex(sha256)) return undefined;
    try {
      return statSync(this.pathOf(sha256)).size;
    } catch {
      return undefined;
    }
  }

  read(sha256: string): AsyncIterable<Uint8Array> {
    const path = this.pathOf(sha256);
    // Buffers sized to the file: a small output (a text job's JSON) was read into a fresh 1 MiB buffer.
    let size = OUTPUT_CHUNK_BYTES;
    try {
      size = statSync(path).size;
    } catch {
      // The stream reports the missing file.
    }
    return createReadStream(path, { highWaterMark: Math.max(1, Math.min(OUTPUT_CHUNK_BYTES, size)) });
  }

  async put(v: VerifiedOutput): Promise<boolean> {
    const dest = this.#destOf(v.sha256);
    if (existsSync(dest)) {
      if (v.file !== undefined) rmSync(v.file, { force: true });
      return false;
    }
    if (v.file !== undefined) {
      renameSync(v.file, dest);
      return true;
    }
    const tmp = join(this.tmpDir, `${randomBytes(12).toString("hex")}.part`);
    writeFileSync(tmp, v.bytes ?? new Uint8Array(), { flag: "wx", mode: 0o600 });
    try {
      renameSync(tmp, dest);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    return true;
  }

  async removeIfUnreferenced(sha256: string): Promise<void> {
    if (!this.refs.isReferenced(sha256)) this.remove(sha256);
  }

  /** Removes a stored output. */
  remove(sha256: string): void {
    rmSync(this.pathOf(sha256), { force: true });
  }

  /**
   * Startup sweep: outputs are moved into place just before their job's complete
   * commits (OutputStaging.commit), so a crash in between leaves a file no row names;
   * nothing else puts one there and jobs are never deleted, so such a file is garbage.
   * Runs before the studio serves, so no commit is in flight.
   */
  async sweep(): Promise<string[]> {
    const referenced = this.refs.referencedDigests();
    const removed: string[] = [];
    for (const sha of [...this.storedDigests()]) {
      if (referenced.has(sha)) continue;
      this.remove(sha);
      removed.push(sha);
    }
    return removed;
  }

  /** Every stored digest. */
  *storedDigests(): Generator<string> {
    for (const shard of readdirSync(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      for (const name of readdirSync(join(this.root, shard))) if (isSha256Hex(name)) yield name;
    }
  }

  #destOf(sha256: string): string {
    const dest = this.pathOf(sha256);
    const shard = sha256.slice(0, 2);
    if (!this.#shards.has(shard)) {
      mkdirSync(join(this.root, shard), { recursive: true });
      this.#shards.add(shard);
    }
    return dest;
  }
}
