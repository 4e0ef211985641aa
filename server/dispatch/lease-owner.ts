import type { Caller } from "../auth/caller.js";

/**
 * Which token took each live lease (the session's or the poller's caller), kept
 * in memory beside the lease rows. A lease id is a 128-bit secret, so knowing it
 * is what lets a worker act on a job today; the auth issue tightens that here.
 */
export class LeaseOwners {
  readonly #tokens = new Map<string, string>();

  record(leaseId: string, tokenId: string): void {
    this.#tokens.set(leaseId, tokenId);
  }

  forget(leaseId: string): void {
    this.#tokens.delete(leaseId);
  }

  tokenOf(leaseId: string): string | undefined {
    return this.#tokens.get(leaseId);
  }
}

/**
 * THE hook for the auth issue: every message that acts on a lease (accept,
 * decline, progress, heartbeat, output chunks, complete, fail, from a session or
 * the polling API) passes through here after the store has matched the lease id.
 * Today any caller is allowed when the lease id matches. The auth issue makes it
 * throw DispatchError("permission_denied", ...) when `ownerTokenId` is set and
 * differs from `caller.tokenId` (a worker touching another worker's lease).
 */
export function assertLeaseOwner(ownerTokenId: string | undefined, caller: Caller, _leaseId: string): void {
  void ownerTokenId;
  void caller;
}
