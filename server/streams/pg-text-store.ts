import { create } from "@bufbuild/protobuf";
import { sql } from "drizzle-orm";
import { StreamedTextSchema, type StreamedText } from "../../gen/studio/v1/job_pb.js";
import type { PgDb } from "../db/pg/pg-db.js";
import type { TextStore } from "./text-store.js";

/** The text store on the PostgreSQL database every replica shares. */
export class PgTextStore implements TextStore {
  constructor(
    private readonly db: PgDb,
    private readonly now: () => number,
  ) {}

  async save(jobId: string, t: StreamedText): Promise<void> {
    await this.db.rows(
      sql`INSERT INTO "streamedTexts" ("jobId", "attempt", "text", "reasoning", "tokens", "updatedAt")
          VALUES (${jobId}, ${t.attempt}, ${t.text}, ${t.reasoning}, ${t.tokens}, ${this.now()})
          ON CONFLICT ("jobId") DO UPDATE SET "attempt" = EXCLUDED."attempt", "text" = EXCLUDED."text",
            "reasoning" = EXCLUDED."reasoning", "tokens" = EXCLUDED."tokens", "updatedAt" = EXCLUDED."updatedAt"
          WHERE EXCLUDED."attempt" >= "streamedTexts"."attempt"`,
    );
  }

  async load(jobId: string): Promise<StreamedText | undefined> {
    const [row] = await this.db.rows<{ attempt: number; text: string; reasoning: string; tokens: number }>(
      sql`SELECT "attempt", "text", "reasoning", "tokens" FROM "streamedTexts" WHERE "jobId" = ${jobId}`,
    );
    return row ? create(StreamedTextSchema, { attempt: Number(row.attempt), text: row.text, reasoning: row.reasoning, tokens: Number(row.tokens) }) : undefined;
  }

  async remove(jobId: string): Promise<void> {
    await this.db.rows(sql`DELETE FROM "streamedTexts" WHERE "jobId" = ${jobId}`);
  }
}
