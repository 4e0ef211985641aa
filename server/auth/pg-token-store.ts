import { desc, eq, sql } from "drizzle-orm";
import type { PgDb } from "../db/pg/pg-db.js";
import { apiTokens } from "../db/pg/schema.js";
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
  type TokenRow,
  type TokenStore,
} from "./token-store.js";

export interface PgTokenStoreOptions {
  touchIntervalMs?: number;
  /**
   * How long a looked-up token is trusted without asking the database again. Revocations
   * clear it at once (forget, fed by the other replicas' notifications); the bound covers
   * a notification lost with a dropped connection.
   */
  cacheMs?: number;
}

/**
 * The token store on PostgreSQL. Every RPC authenticates, so a found token is kept in
 * memory for cacheMs (at most a few seconds) rather than costing a query per call; a
 * revocation anywhere ends it at once through `forget`.
 */
export class PgTokenStore implements TokenStore {
  readonly #db: PgDb;
  readonly #now: () => number;
  readonly #touchIntervalMs: number;
  readonly #cacheMs: number;
  readonly #cache = new Map<string, { token: TokenRecord; at: number }>();

  constructor(db: PgDb, now: () => number, { touchIntervalMs = 60_000, cacheMs = 2000 }: PgTokenStoreOptions = {}) {
    this.#db = db;
    this.#now = now;
    this.#touchIntervalMs = touchIntervalMs;
    this.#cacheMs = cacheMs;
  }

  /** Drops what is cached about a token (it was revoked, here or on another replica), or everything. */
  forget(tokenId?: string): void {
    if (tokenId === undefined) return this.#cache.clear();
    for (const [hash, e] of this.#cache) if (e.token.id === tokenId) this.#cache.delete(hash);
  }

  async create(name: string, role: Role): Promise<{ token: TokenRecord; secret: string }> {
    const secret = newSecret();
    return { token: await this.#insert(name, role, hashSecret(secret)), secret };
  }

  async ensureSecret(secret: string, name: string, role: Role): Promise<TokenRecord> {
    const hash = hashSecret(secret);
    const [row] = await this.#db.orm.select().from(apiTokens).where(eq(apiTokens.secretHash, hash));
    if (row) return toRecord(row);
    try {
      return await this.#insert(name, role, hash);
    } catch (err) {
      // Two replicas started with the same --admin-token: the other one stored it first.
      const [again] = await this.#db.orm.select().from(apiTokens).where(eq(apiTokens.secretHash, hash));
      if (again) return toRecord(again);
      throw err;
    }
  }

  async #insert(name: string, role: Role, secretHash: string): Promise<TokenRecord> {
    const row = newTokenRow(name, role, secretHash, this.#now());
    // The bound is checked in the INSERT itself: no row is written past it.
    const inserted = await this.#db.rows(
      sql`INSERT INTO "apiTokens" ("id", "name", "role", "secretHash", "createdAt")
          SELECT ${row.id}, ${row.name}, ${row.role}, ${row.secretHash}, ${row.createdAt}
          WHERE (SELECT count(*) FROM "apiTokens") < ${TOKEN_COUNT_MAX}
          RETURNING "id"`,
    );
    if (inserted.length === 0) throw tooManyTokens();
    return toRecord(row);
  }

  async list(): Promise<TokenRecord[]> {
    return (await this.#db.orm.select().from(apiTokens).orderBy(desc(apiTokens.createdAt), desc(apiTokens.id))).map(toRecord);
  }

  async get(id: string): Promise<TokenRecord | undefined> {
    const [row] = await this.#db.orm.select().from(apiTokens).where(eq(apiTokens.id, id));
    return row ? toRecord(row) : undefined;
  }

  async count(): Promise<number> {
    const [row] = await this.#db.rows<{ n: string | number }>(sql`SELECT count(*) AS n FROM "apiTokens"`);
    return Number(row?.n ?? 0);
  }

  async revoke(id: string): Promise<TokenRecord> {
    const changed = await this.#db.orm
      .update(apiTokens)
      .set({ revokedAt: this.#now() })
      .where(sql`${apiTokens.id} = ${id} AND ${apiTokens.revokedAt} IS NULL`)
      .returning();
    this.forget(id);
    if (changed[0]) return toRecord(changed[0]);
    const token = await this.get(id);
    if (!token) throw new TokenError("not_found", `no token with id ${JSON.stringify(id)}`);
    throw new TokenError("already_revoked", `token ${id} was already revoked`);
  }

  async authenticate(secret: string): Promise<TokenRecord | undefined> {
    const hash = hashSecret(secret);
    const now = this.#now();
    const cached = this.#cache.get(hash);
    let token: TokenRecord;
    if (cached && now - cached.at < this.#cacheMs) token = cached.token;
    else {
      const [row] = await this.#db.rows<TokenRow>(sql`SELECT * FROM "apiTokens" WHERE "secretHash" = ${hash}`);
      if (!row || !sameHash(row.secretHash, hash)) {
        this.#cache.delete(hash);
        return undefined;
      }
      token = toRecord({ ...row, createdAt: Number(row.createdAt), lastUsedAt: nullableNumber(row.lastUsedAt), revokedAt: nullableNumber(row.revokedAt) });
      if (this.#cache.size > 10_000) this.#cache.clear();
      this.#cache.set(hash, { token, at: now });
    }
    if (token.revokedAt === null && (token.lastUsedAt === null || now - token.lastUsedAt >= this.#touchIntervalMs)) {
      token.lastUsedAt = now;
      await this.#db.rows(sql`UPDATE "apiTokens" SET "lastUsedAt" = ${now} WHERE "id" = ${token.id}`);
    }
    return { ...token };
  }
}

function nullableNumber(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}
