import { create } from "@bufbuild/protobuf";
import { StreamedTextSchema, type StreamedText } from "../../gen/studio/v1/job_pb.js";
import type { StudioDb } from "../db/open.js";
import type { TextStore } from "./text-store.js";

interface Row {
  attempt: number;
  text: string;
  reasoning: string;
  tokens: number;
}

/** The text store on the studio's SQLite file; writes join the turn's group commit. */
export class SqliteTextStore implements TextStore {
  readonly #db: StudioDb;
  readonly #now: () => number;
  readonly #upsert;
  readonly #select;
  readonly #delete;

  constructor(db: StudioDb, now: () => number) {
    this.#db = db;
    this.#now = now;
    this.#upsert = db.sqlite.prepare<void, [string, number, string, string, number, number]>(
      `INSERT INTO streamedTexts (jobId, attempt, text, reasoning, tokens, updatedAt) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (jobId) DO UPDATE SET attempt = excluded.attempt, text = excluded.text, reasoning = excluded.reasoning,
         tokens = excluded.tokens, updatedAt = excluded.updatedAt
       WHERE excluded.attempt >= streamedTexts.attempt`,
    );
    this.#select = db.sqlite.prepare<Row, [string]>(`SELECT attempt, text, reasoning, tokens FROM streamedTexts WHERE jobId = ?`);
    this.#delete = db.sqlite.prepare<void, [string]>(`DELETE FROM streamedTexts WHERE jobId = ?`);
  }

  async save(jobId: string, t: StreamedText): Promise<void> {
    const at = this.#now();
    await this.#db.group.run(() => this.#upsert.run(jobId, t.attempt, t.text, t.reasoning, t.tokens, at));
  }

  async load(jobId: string): Promise<StreamedText | undefined> {
    const row = this.#select.get(jobId);
    return row ? create(StreamedTextSchema, { attempt: row.attempt, text: row.text, reasoning: row.reasoning, tokens: row.tokens }) : undefined;
  }

  async remove(jobId: string): Promise<void> {
    await this.#db.group.run(() => this.#delete.run(jobId));
  }
}
