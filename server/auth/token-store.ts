import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
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

/** The record of a stored row; a role this build does not know reads as revoked. */
export function toRecord(row: TokenRow): TokenRecord {
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

/** An apiTokens row as both stores read it. */
export interface TokenRow {
  id: string;
  name: string;
  role: string;
  secretHash: string;
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

/** A new token's row: a fresh id, the checked name, the hash of its secret. */
export function newTokenRow(name: string, role: Role, secretHash: string, at: number): TokenRow {
  return {
    id: `tok_${randomBytes(9).toString("base64url")}`,
    name: checkTokenName(name),
    role,
    secretHash,
    createdAt: at,
    lastUsedAt: null,
    revokedAt: null,
  };
}

/** The stored hash equals the hash of the presented secret, compared in constant time. */
export function sameHash(stored: string, presented: string): boolean {
  const a = Buffer.from(stored, "hex");
  const b = Buffer.from(presented, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

/** What goes wrong when the table is full. */
export const tooManyTokens = () =>
  new TokenError("resource_exhausted", `at most ${TOKEN_COUNT_MAX} tokens may exist; revoked ones count too`);

/**
 * The apiTokens table: create (secret returned once), list, revoke, and look a
 * secret up by its hash. lastUsedAt is written at most once per touchIntervalMs
 * per token so that busy workers do not turn every RPC into a write. SQLite
 * (sqlite-token-store.ts) and PostgreSQL (pg-token-store.ts) implement it and run
 * the same suite (test/auth/token-store-suite.ts).
 */
export interface TokenStore {
  /** Creates a token; the secret is in the result and nowhere else. */
  create(name: string, role: Role): Promise<{ token: TokenRecord; secret: string }>;
  /** Stores a secret chosen by the operator (--admin-token) unless its hash is already there. */
  ensureSecret(secret: string, name: string, role: Role): Promise<TokenRecord>;
  /** Every token, newest first. */
  list(): Promise<TokenRecord[]>;
  get(id: string): Promise<TokenRecord | undefined>;
  /** How many tokens exist, revoked included: any row at all means auth is enforced. */
  count(): Promise<number>;
  /** Marks a token revoked; revoking twice is an error so that scripts notice typos in ids. */
  revoke(id: string): Promise<TokenRecord>;
  /** The token whose hash matches the secret (compared in constant time), or undefined. */
  authenticate(secret: string): Promise<TokenRecord | undefined>;
}
