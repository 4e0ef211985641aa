import { ConnectError, Code } from "@connectrpc/connect";

/**
 * Bounds concurrent long-lived streams (WatchJobs) per token, so that one client
 * cannot hold every connection slot. `acquire` throws RESOURCE_EXHAUSTED when the
 * token is at its limit and returns the function that frees the slot.
 */
export class StreamLimiter {
  readonly #max: number;
  readonly #open = new Map<string, number>();

  constructor(maxPerToken: number) {
    if (!Number.isInteger(maxPerToken) || maxPerToken < 1) throw new RangeError("maxPerToken must be a positive integer");
    this.#max = maxPerToken;
  }

  acquire(tokenId: string, what: string): () => void {
    const n = this.#open.get(tokenId) ?? 0;
    if (n >= this.#max) {
      throw new ConnectError(
        `this token already has ${n} open ${what} streams (at most ${this.#max}); close one first`,
        Code.ResourceExhausted,
      );
    }
    this.#open.set(tokenId, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#open.get(tokenId) ?? 1) - 1;
      if (left <= 0) this.#open.delete(tokenId);
      else this.#open.set(tokenId, left);
    };
  }

  /** Open streams of a token (for tests and metrics). */
  count(tokenId: string): number {
    return this.#open.get(tokenId) ?? 0;
  }
}
