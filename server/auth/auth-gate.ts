import { OPEN_CALLER, type Caller, type Role } from "./caller.js";
import type { TokenStore } from "./token-store.js";

/** Why a caller was refused: unauthenticated (no or bad token) or permission_denied (wrong role). */
export class AuthError extends Error {
  constructor(
    readonly code: "unauthenticated" | "permission_denied",
    message: string,
  ) {
    super(message);
    this.name = "AuthError";
  }
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * Turns an Authorization header into a Caller. The studio is open (every caller
 * is OPEN_CALLER) only while it is bound to loopback and the token table is
 * empty; the first token ever created switches enforcement on for good.
 */
export class AuthGate {
  readonly #store: TokenStore;
  readonly #loopback: boolean;
  /** Undefined until init(); once false it stays false (the first token switches auth on for good). */
  #open: boolean | undefined;

  readonly #onClosed: (() => void) | undefined;

  /** onClosed runs once, when an open studio turns auth on (to end what anonymous callers still hold open). */
  constructor(store: TokenStore, { loopback, onClosed }: { loopback: boolean; onClosed?: () => void }) {
    this.#store = store;
    this.#loopback = loopback;
    this.#onClosed = onClosed;
  }

  /** Decides the mode from the token table (after the bootstrap ran); until then nobody is let in open. */
  async init(): Promise<void> {
    this.#open = this.#loopback && (await this.#store.count()) === 0;
  }

  /** Whether callers without a token were let in at the last check (cheap; isOpen() checks again). */
  get open(): boolean {
    return this.#open === true;
  }

  /** Whether callers without a token are let in right now: while open, any token in the table (made here or on another replica) closes it. */
  async isOpen(): Promise<boolean> {
    if (this.#open && (await this.#store.count()) > 0) this.close();
    return this.#open === true;
  }

  /** Auth is on for good (a token was created here or, with a shared database, on another replica). */
  close(): void {
    const wasOpen = this.#open === true;
    this.#open = false;
    if (wasOpen) this.#onClosed?.();
  }

  /** The caller behind a header value, or AuthError("unauthenticated"). */
  async authenticate(authorization: string | null | undefined): Promise<Caller> {
    if (this.#open && (await this.isOpen())) return OPEN_CALLER;
    if (!authorization) {
      throw new AuthError("unauthenticated", "this studio needs a bearer token: send `Authorization: Bearer <token>`");
    }
    const m = BEARER.exec(authorization);
    if (!m) throw new AuthError("unauthenticated", "the Authorization header must be `Bearer <token>`");
    const token = await this.#store.authenticate(m[1]!);
    if (!token) throw new AuthError("unauthenticated", "unknown token: ask an admin for a token (`studio tokens create`)");
    if (token.revokedAt !== null) throw new AuthError("unauthenticated", `token ${token.id} (${token.name}) was revoked`);
    return { tokenId: token.id, name: token.name, role: token.role };
  }

  /** Refuses a caller whose role is not among roles. */
  authorize(caller: Caller, roles: readonly Role[], what: string): void {
    if (!roles.includes(caller.role)) {
      throw new AuthError(
        "permission_denied",
        `a ${caller.role} token may not call ${what}; it needs one of: ${roles.join(", ")}`,
      );
    }
  }
}
