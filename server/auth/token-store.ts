import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { desc, eq } from "drizzle-orm";
import type { StudioDb } from "../db/open.js";
import { apiTokens } from "../db/schema.js";
import type { Role } from "./caller.js";

/** Every secret starts with this, so a leaked one is recognisable (and secret scanners can match it). */
export const TOKEN_PREFIX = "stu_";
/** Random bytes in a secret: 256 bits. */
export const TOKEN_SECRET_BYTES = 32;
/** Longest token name accepted. */
export const TOKEN_NAME_MAX = 100;
/** Most tokens the table may hold (revoked ones included), so a runaway script cannot fill the disk. */
export const TOKEN_COUNT_MAX = 10_000;

/** A token as stored, without its secret. Times are Unix milliseconds. */
export interface TokenRecord {
  id: string;
  name: string;
  role: Role;
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

/** Why a token operation was refused; `code` is what the RPC edge maps to a Connect code. */
export class TokenError extends Error {
  constructor(
    readonly code: "not_found" | "invalid_argument" | "resource_exhausted" | "already_revoked",
    message: string,
  ) {
    super(message);
    this.name = "TokenError";
  }
}

/** sha256 hex of a secret: all that is ever stored. */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** A new bearer secret: `stu_` and 32 random bytes in base64url. */
export function newSecret(): string {
  return `${TOKEN_PREFIX}${randomBytes(TOKEN_SECRET_BYTES).toString("base64url")}`;
}

const ROLES: readonly Role[] = ["admin", "client", "worker"];

function toRecord(row: typeof apiTokens.$inferSelect): TokenRecord {
  const role = ROLES.includes(row.role as Role) ? (row.role as Role) : undefined;
  // A row with a role this build does not know grants nothing: treat it as revoked.
  return {
    id: row.id,
    name: row.name,
    role: role ?? "client",
    createdAt: row.createdAt,
    lastUsedAt: row.lastUsedAt,
    revokedAt: role ? row.revokedAt : (row.revokedAt ?? row.createdAt),
  };
}

/** The trimmed token name, or TokenError("invalid_argument") saying what is wrong with it. */
export function checkTokenName(name: string): string {
  const trimmed = name.trim();
  if (trimmed.length === 0) throw new TokenError("invalid_argument", "name: a token needs a name (who or what uses it)");
  if (trimmed.length > TOKEN_NAME_MAX) throw new TokenError("invalid_argument", `name: at most ${TOKEN_NAME_MAX} characters`);
  if (/\p{Cc}/u.test(trimmed)) throw new TokenError("invalid_argument", "name: control characters are not allowed");
  return trimmed;
}

/**
 * The apiTokens table: create (secret returned once), list, revoke, and look a
 * secret up by its hash. lastUsedAt is written at most once per touchIntervalMs
 * per token so that busy workers do not turn every RPC into a write.
 */
export class TokenStore {
  readonly #db: StudioDb;
  readonly #now: () => number;
  readonly #touchIntervalMs: number;

  constructor(db: StudioDb, now: () => number, { touchIntervalMs = 60_000 }: { touchIntervalMs?: number } = {}) {
    this.#db = db;
    this.#now = now;
    this.#touchIntervalMs = touchIntervalMs;
  }

  /** Creates a token; the secret is in the result and nowhere else. */
  create(name: string, role: Role): { token: TokenRecord; secret: string } {
    const secret = newSecret();
    return { token: this.#insert(name, role, hashSecret(secret)), secret };
  }

  /** Stores a secret chosen by the operator (--admin-token) unless its hash is already there. */
  ensureSecret(secret: string, name: string, role: Role): TokenRecord {
    const hash = hashSecret(secret);
    const row = this.#db.orm.select().from(apiTokens).where(eq(apiTokens.secretHash, hash)).get();
    return row ? toRecord(row) : this.#insert(name, role, hash);
  }

  #insert(name: string, role: Role, secretHash: string): TokenRecord {
    const trimmed = checkTokenName(name);
    if (this.count() >= TOKEN_COUNT_MAX) {
      throw new TokenError("resource_exhausted", `at most ${TOKEN_COUNT_MAX} tokens may exist; revoked ones count too`);
    }
    const row = {
      id: `tok_${randomBytes(9).toString("base64url")}`,
      name: trimmed,
      role,
      secretHash,
      createdAt: this.#now(),
      lastUsedAt: null,
      revokedAt: null,
    };
    this.#db.orm.insert(apiTokens).values(row).run();
    return toRecord(row);
  }

  /** Every token, newest first. */
  list(): TokenRecord[] {
    return this.#db.orm.select().from(apiTokens).orderBy(desc(apiTokens.createdAt), desc(apiTokens.id)).all().map(toRecord);
  }

  get(id: string): TokenRecord | undefined {
    const row = this.#db.orm.select().from(apiTokens).where(eq(apiTokens.id, id)).get();
    return row ? toRecord(row) : undefined;
  }

  /** How many tokens exist, revoked included: any row at all means auth is enforced. */
  count(): number {
    return this.#db.sqlite.query<{ n: number }, []>("SELECT count(*) AS n FROM apiTokens").get()?.n ?? 0;
  }

  /** Marks a token revoked; revoking twice is an error so that scripts notice typos in ids. */
  revoke(id: string): TokenRecord {
    const changed = this.#db.sqlite
      .query("UPDATE apiTokens SET revokedAt = ? WHERE id = ? AND revokedAt IS NULL")
      .run(this.#now(), id);
    const token = this.get(id);
    if (!token) throw new TokenError("not_found", `no token with id ${JSON.stringify(id)}`);
    if (changed.changes === 0) throw new TokenError("already_revoked", `token ${id} was already revoked`);
    return token;
  }

  /**
   * The token whose hash matches the secret, or undefined. The lookup goes through
   * the unique index; the found hash is then compared in constant time.
   */
  authenticate(secret: string): TokenRecord | undefined {
    const hash = hashSecret(secret);
    // On every RPC: a statement bun:sqlite prepares once and caches, not a query built each time.
    const row = this.#db.sqlite
      .query<typeof apiTokens.$inferSelect, [string]>("SELECT * FROM apiTokens WHERE secretHash = ?")
      .get(hash);
    if (!row) return undefined;
    const a = Buffer.from(row.secretHash, "hex");
    const b = Buffer.from(hash, "hex");
    if (a.length !== b.length || !timingSafeEqual(a, b)) return undefined;
    const token = toRecord(row);
    const now = this.#now();
    if (token.revokedAt === null && (token.lastUsedAt === null || now - token.lastUsedAt >= this.#touchIntervalMs)) {
      this.#db.sqlite.query("UPDATE apiTokens SET lastUsedAt = ? WHERE id = ?").run(now, token.id);
      token.lastUsedAt = now;
    }
    return token;
  }
}
