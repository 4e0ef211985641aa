import { desc, eq } from "drizzle-orm";
import type { StudioDb } from "../db/open.js";
import { apiTokens } from "../db/schema.js";
import type { Role } from "./caller.js";
import {
  hashSecret,
  newSecret,
  newTokenRow,
  sameHash,
  toRecord,
  TOKEN_COUNT_MAX,
  TokenError,
  tooManyTokens,
  type TokenRecord,
  type TokenStore,
} from "./token-store.js";

/** The token store on the studio's SQLite file. */
export class SqliteTokenStore implements TokenStore {
  readonly #db: StudioDb;
  readonly #now: () => number;
  readonly #touchIntervalMs: number;

  constructor(db: StudioDb, now: () => number, { touchIntervalMs = 60_000 }: { touchIntervalMs?: number } = {}) {
    this.#db = db;
    this.#now = now;
    this.#touchIntervalMs = touchIntervalMs;
  }

  async create(name: string, role: Role): Promise<{ token: TokenRecord; secret: string }> {
    const secret = newSecret();
    return { token: this.#insert(name, role, hashSecret(secret)), secret };
  }

  async ensureSecret(secret: string, name: string, role: Role): Promise<TokenRecord> {
    const hash = hashSecret(secret);
    const row = this.#db.orm.select().from(apiTokens).where(eq(apiTokens.secretHash, hash)).get();
    return row ? toRecord(row) : this.#insert(name, role, hash);
  }

  #insert(name: string, role: Role, secretHash: string): TokenRecord {
    const row = newTokenRow(name, role, secretHash, this.#now());
    if (this.#count() >= TOKEN_COUNT_MAX) throw tooManyTokens();
    this.#db.orm.insert(apiTokens).values(row).run();
    return toRecord(row);
  }

  async list(): Promise<TokenRecord[]> {
    return this.#db.orm.select().from(apiTokens).orderBy(desc(apiTokens.createdAt), desc(apiTokens.id)).all().map(toRecord);
  }

  async get(id: string): Promise<TokenRecord | undefined> {
    return this.#get(id);
  }

  #get(id: string): TokenRecord | undefined {
    const row = this.#db.orm.select().from(apiTokens).where(eq(apiTokens.id, id)).get();
    return row ? toRecord(row) : undefined;
  }

  async count(): Promise<number> {
    return this.#count();
  }

  #count(): number {
    return this.#db.sqlite.query<{ n: number }, []>("SELECT count(*) AS n FROM apiTokens").get()?.n ?? 0;
  }

  async revoke(id: string): Promise<TokenRecord> {
    const changed = this.#db.sqlite
      .query("UPDATE apiTokens SET revokedAt = ? WHERE id = ? AND revokedAt IS NULL")
      .run(this.#now(), id);
    const token = this.#get(id);
    if (!token) throw new TokenError("not_found", `no token with id ${JSON.stringify(id)}`);
    if (changed.changes === 0) throw new TokenError("already_revoked", `token ${id} was already revoked`);
    return token;
  }

  async authenticate(secret: string): Promise<TokenRecord | undefined> {
    const hash = hashSecret(secret);
    // On every RPC: a statement bun:sqlite prepares once and caches, not a query built each time.
    const row = this.#db.sqlite
      .query<typeof apiTokens.$inferSelect, [string]>("SELECT * FROM apiTokens WHERE secretHash = ?")
      .get(hash);
    if (!row || !sameHash(row.secretHash, hash)) return undefined;
    const token = toRecord(row);
    const now = this.#now();
    if (token.revokedAt === null && (token.lastUsedAt === null || now - token.lastUsedAt >= this.#touchIntervalMs)) {
      this.#db.sqlite.query("UPDATE apiTokens SET lastUsedAt = ? WHERE id = ?").run(now, token.id);
      token.lastUsedAt = now;
    }
    return token;
  }
}
