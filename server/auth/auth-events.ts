import { EventEmitter } from "node:events";

/**
 * What the auth module tells the rest of the studio. An interceptor cannot end a
 * stream that is already open, so whoever holds per-token state (dispatch's worker
 * sessions) subscribes to revocations and closes what the token opened.
 */
export class AuthEvents {
  readonly #emitter = new EventEmitter();

  constructor() {
    this.#emitter.setMaxListeners(0);
  }

  /** Publish after the revocation has committed. */
  revoked(tokenId: string): void {
    this.#emitter.emit("revoked", tokenId);
  }

  /** Publish after a token was created (the first one turns auth on for good). */
  created(tokenId: string): void {
    this.#emitter.emit("created", tokenId);
  }

  /** Calls listener with the id of every token created from now on; returns the unsubscribe function. */
  onCreate(listener: (tokenId: string) => void): () => void {
    this.#emitter.on("created", listener);
    return () => this.#emitter.off("created", listener);
  }

  /** Calls listener with the id of every token revoked from now on; returns the unsubscribe function. */
  onRevoke(listener: (tokenId: string) => void): () => void {
    this.#emitter.on("revoked", listener);
    return () => this.#emitter.off("revoked", listener);
  }
}
