import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { parseModelSourceJson } from "../../contract/model-source.js";
import { vramNeedOf } from "../../contract/vram.js";
import { openStudioDb } from "../../server/db/open.js";
import { openTestPgStorage } from "../helpers/pg-storage.js";

const GiB = 1024 ** 3;
const file = (name: string, approxBytes?: number) => ({
  role: "model",
  url: `https://example.com/${name}`,
  filename: name,
  ...(approxBytes === undefined ? {} : { approxBytes }),
});

/** Rows an older studio left in the queue (no vramBytes column then), each with what contract/vram.ts counts for it. */
const rows: Array<{ id: string; engine: string | null; status: string; source: unknown }> = [
  { id: "sized", engine: "llama-cpp", status: "QUEUED", source: { engine: "llama-cpp", files: [file("a.gguf", 7 * GiB + 3)], cliDefaults: {} } },
  {
    id: "sd",
    engine: "sd-cpp",
    status: "RUNNING",
    source: { engine: "sd-cpp", files: [{ ...file("d.gguf", 5 * GiB), role: "diffusion-model" }, { ...file("v.st"), role: "vae" }], cliDefaults: {} },
  },
  { id: "unsized", engine: "llama-cpp", status: "QUEUED", source: { engine: "llama-cpp", files: [file("b.gguf")], cliDefaults: {} } },
  { id: "synthetic", engine: "synthetic", status: "QUEUED", source: { engine: "synthetic", files: [], cliDefaults: {} } },
  { id: "done", engine: "llama-cpp", status: "SUCCEEDED", source: { engine: "llama-cpp", files: [file("c.gguf", GiB)], cliDefaults: {} } },
  { id: "garbled", engine: "llama-cpp", status: "QUEUED", source: "{not json" },
];
const text = (s: unknown) => (typeof s === "string" ? s : JSON.stringify(s));
const expected = (r: (typeof rows)[number]) =>
  r.status === "SUCCEEDED" ? null : (vramNeedOf(parseModelSourceJson(text(r.source)))?.bytes ?? null);

/** The statements after the ALTER of a migration file: what it does to rows already there. */
function backfillOf(path: string): string[] {
  return readFileSync(path, "utf8").split("--> statement-breakpoint").slice(1);
}

describe("migration 0004 counts the GPU memory of the jobs already queued, as the studio would", () => {
  test("SQLite", () => {
    const dir = mkdtempSync(join(tmpdir(), "vram-backfill-"));
    const db = openStudioDb(dir);
    try {
      for (const r of rows)
        db.sqlite.run(
          `INSERT INTO graphicsJobs (id, model, engine, status, task, modelSource, createdAt, updatedAt) VALUES (?, 'm', ?, ?, '{}', ?, 1, 1)`,
          [r.id, r.engine, r.status, text(r.source)],
        );
      for (const statement of backfillOf(join(import.meta.dir, "../../server/db/migrations/0004_job_vram.sql"))) db.sqlite.run(statement);
      for (const r of rows) {
        const got = (db.sqlite.query("SELECT vramBytes FROM graphicsJobs WHERE id = ?").get(r.id) as { vramBytes: number | null }).vramBytes;
        expect([r.id, got]).toEqual([r.id, expected(r)]);
      }
      expect(expected(rows[0]!)).toBe(7 * GiB + 3 + Math.ceil((7 * GiB + 3) / 5) + 512 * 1024 ** 2);
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("PostgreSQL", async () => {
    const { storage } = await openTestPgStorage();
    try {
      const db = storage.pg!;
      for (const r of rows)
        await db.rows(
          sql`INSERT INTO "graphicsJobs" ("id", "model", "engine", "status", "task", "modelSource", "createdAt", "updatedAt")
              VALUES (${r.id}, 'm', ${r.engine}, ${r.status}, '{}', ${text(r.source)}, 1, 1)`,
        );
      for (const statement of backfillOf(join(import.meta.dir, "../../server/db/pg/migrations/0004_job_vram.sql"))) await db.rows(sql.raw(statement));
      for (const r of rows) {
        const [row] = await db.rows<{ vramBytes: string | number | null }>(sql`SELECT "vramBytes" FROM "graphicsJobs" WHERE "id" = ${r.id}`);
        expect([r.id, row!.vramBytes === null ? null : Number(row!.vramBytes)]).toEqual([r.id, expected(r)]);
      }
    } finally {
      await storage.close();
    }
  });
});
