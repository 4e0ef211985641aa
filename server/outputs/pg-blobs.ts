import { sql } from "drizzle-orm";
import { open, rm } from "node:fs/promises";
import type { PgDb } from "../db/pg/pg-db.js";
import { num } from "../db/pg/rows.js";
import { OUTPUT_CHUNK_BYTES, type OutputBlobs, type VerifiedOutput } from "./output-blobs.js";

export interface PgBlobsOptions {
  now?: () => number;
  /**
   * How long stored bytes may stay unreferenced before the sweep takes them: a put is
   * followed within milliseconds by the complete that marks them referenced, so this only
   * has to outlast the slowest commit, never a job.
   */
  graceMs?: number;
}

/**
 * Output bytes in PostgreSQL, so that any replica serves any job's outputs: a row per
 * digest in studioOutputBlobs and the bytes in studioOutputChunks, 1 MiB per row, read
 * back one chunk per query (never a whole large output in memory). A put inserts the
 * blob row and its chunks in one transaction, unverified; the job's complete marks it
 * verified in the same statement as the row (pg-queue-store.ts). The sweep, on every
 * replica and safe to run anywhere at any time, deletes unverified blobs older than the
 * grace period: bytes of a complete that failed, or of a replica that died between
 * the put and the complete.
 */
export class PgBlobs implements OutputBlobs {
  readonly #now: () => number;
  readonly graceMs: number;

  constructor(
    private readonly db: PgDb,
    { now = Date.now, graceMs = 15 * 60_000 }: PgBlobsOptions = {},
  ) {
    this.#now = now;
    this.graceMs = graceMs;
  }

  async sizeOf(sha256: string): Promise<number | undefined> {
    const [row] = await this.db.rows<{ size: string | number }>(sql`SELECT "size" FROM "studioOutputBlobs" WHERE "sha256" = ${sha256}`);
    return row ? num(row.size) : undefined;
  }

  async *read(sha256: string): AsyncGenerator<Uint8Array> {
    const size = await this.sizeOf(sha256);
    if (size === undefined) throw new Error(`output ${sha256} is not stored`);
    const chunks = Math.ceil(size / OUTPUT_CHUNK_BYTES);
    for (let seq = 0; seq < chunks; seq++) {
      const [row] = await this.db.rows<{ data: Uint8Array }>(
        sql`SELECT "data" FROM "studioOutputChunks" WHERE "sha256" = ${sha256} AND "seq" = ${seq}`,
      );
      if (!row) throw new Error(`output ${sha256} is missing its piece ${seq}`);
      yield row.data;
    }
  }

  async put(v: VerifiedOutput): Promise<boolean> {
    const at = this.#now();
    if (v.file === undefined) {
      const bytes = v.bytes ?? new Uint8Array();
      // Small outputs (the usual case): the blob and its one chunk in one statement.
      const [row] = await this.db.rows<{ created: string | number }>(
        sql`WITH blob AS (
              INSERT INTO "studioOutputBlobs" ("sha256", "size", "createdAt") VALUES (${v.sha256}, ${v.size}, ${at})
              ON CONFLICT ("sha256") DO NOTHING RETURNING "sha256"),
            piece AS (
              INSERT INTO "studioOutputChunks" ("sha256", "seq", "data") SELECT "sha256", 0, ${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)}::bytea FROM blob WHERE ${v.size} > 0)
            SELECT count(*) AS created FROM blob`,
      );
      return num(row?.created ?? 0) > 0;
    }
    try {
      return await this.db.tx(async (q) => {
        const created = await q.rows(
          sql`INSERT INTO "studioOutputBlobs" ("sha256", "size", "createdAt") VALUES (${v.sha256}, ${v.size}, ${at})
              ON CONFLICT ("sha256") DO NOTHING RETURNING "sha256"`,
        );
        if (created.length === 0) return false;
        const file = await open(v.file!, "r");
        try {
          const piece = Buffer.alloc(OUTPUT_CHUNK_BYTES);
          for (let seq = 0, offset = 0; offset < v.size; seq++) {
            const { bytesRead } = await file.read(piece, 0, Math.min(OUTPUT_CHUNK_BYTES, v.size - offset), offset);
            if (bytesRead === 0) throw new Error(`temp file of output ${v.sha256} ended at ${offset} of ${v.size} bytes`);
            await q.rows(
              sql`INSERT INTO "studioOutputChunks" ("sha256", "seq", "data") VALUES (${v.sha256}, ${seq}, ${piece.subarray(0, bytesRead)}::bytea)`,
            );
            offset += bytesRead;
          }
        } finally {
          await file.close();
        }
        return true;
      });
    } finally {
      await rm(v.file, { force: true });
    }
  }

  /** Left to the sweep: another replica may be committing a job with the same digest right now. */
  async removeIfUnreferenced(_sha256: string): Promise<void> {}

  async sweep(): Promise<string[]> {
    return this.sweepOlderThan(this.#now() - this.graceMs);
  }

  /** Deletes unverified blobs stored before `cutoff` (their chunks go with them). */
  async sweepOlderThan(cutoff: number): Promise<string[]> {
    const rows = await this.db.rows<{ sha256: string }>(
      sql`DELETE FROM "studioOutputBlobs" WHERE NOT "verified" AND "createdAt" < ${cutoff} RETURNING "sha256"`,
    );
    return rows.map((r) => r.sha256);
  }
}
