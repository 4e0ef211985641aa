import { describe, expect, test } from "bun:test";
import { hashSecret, TOKEN_PREFIX, TokenError, type TokenStore } from "../../server/auth/token-store.js";

/** What the shared suite needs from one storage implementation: an empty token table on a clock the test moves. */
export interface TokenHarness {
  store: TokenStore;
  /** Moves the store's clock forward. */
  advance(ms: number): void;
  /** The stored secretHash column of every row (to prove no secret is stored). */
  storedHashes(): Promise<string[]>;
  close(): Promise<void> | void;
}

/** The store's touch interval the harness must configure. */
export const TOUCH_INTERVAL_MS = 60_000;

async function codeOf(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof TokenError) return err.code;
    throw err;
  }
  throw new Error("expected a TokenError");
}

/** The token store's rules, run against every store. */
export function exerciseTokenStore(name: string, open: () => Promise<TokenHarness>) {
  describe(`TokenStore contract: ${name}`, () => {
    const withStore = (fn: (h: TokenHarness) => Promise<void>) => async () => {
      const h = await open();
      try {
        await fn(h);
      } finally {
        await h.close();
      }
    };

    test(
      "create returns the secret once and stores only its hash; authenticate finds the token",
      withStore(async (h) => {
        expect(await h.store.count()).toBe(0);
        const { token, secret } = await h.store.create("  laptop  ", "client");
        expect(secret.startsWith(TOKEN_PREFIX)).toBe(true);
        expect(token).toMatchObject({ name: "laptop", role: "client", revokedAt: null, lastUsedAt: null });
        expect(await h.storedHashes()).toEqual([hashSecret(secret)]);
        expect(await h.store.authenticate(secret)).toMatchObject({ id: token.id, role: "client" });
        expect(await h.store.authenticate(`${secret}x`)).toBeUndefined();
        expect(await h.store.count()).toBe(1);
      }),
    );

    test(
      "list is newest first; revoke marks once; unknown ids are not_found; names are checked",
      withStore(async (h) => {
        const a = (await h.store.create("a", "admin")).token;
        h.advance(1);
        const b = await h.store.create("b", "worker");
        expect((await h.store.list()).map((t) => t.id)).toEqual([b.token.id, a.id]);
        const revoked = await h.store.revoke(b.token.id);
        expect(revoked.revokedAt).not.toBeNull();
        expect((await h.store.authenticate(b.secret))?.revokedAt).not.toBeNull();
        expect(await codeOf(() => h.store.revoke(b.token.id))).toBe("already_revoked");
        expect(await codeOf(() => h.store.revoke("tok_nope"))).toBe("not_found");
        expect(await codeOf(() => h.store.create("   ", "client"))).toBe("invalid_argument");
        expect(await codeOf(() => h.store.create("x".repeat(101), "client"))).toBe("invalid_argument");
        expect((await h.store.get(a.id))?.name).toBe("a");
        expect(await h.store.get("tok_nope")).toBeUndefined();
      }),
    );

    test(
      "ensureSecret stores an operator's secret once; lastUsedAt is written at most once per interval",
      withStore(async (h) => {
        const secret = "an-operator-chosen-admin-secret-of-enough-length";
        const first = await h.store.ensureSecret(secret, "admin (--admin-token)", "admin");
        const again = await h.store.ensureSecret(secret, "other name", "admin");
        expect(again.id).toBe(first.id);
        expect(await h.store.count()).toBe(1);
        const used = (await h.store.authenticate(secret))!.lastUsedAt!;
        expect(used).toBeGreaterThan(0);
        h.advance(TOUCH_INTERVAL_MS / 2);
        expect((await h.store.authenticate(secret))!.lastUsedAt).toBe(used);
        h.advance(TOUCH_INTERVAL_MS);
        expect((await h.store.authenticate(secret))!.lastUsedAt).toBe(used + TOUCH_INTERVAL_MS * 1.5);
        expect((await h.store.get(first.id))!.lastUsedAt).toBe(used + TOUCH_INTERVAL_MS * 1.5);
      }),
    );
  });
}
