import type { Caller } from "../auth/caller.js";
import { DispatchError } from "./dispatch-error.js";

/**
 * Which token took each live lease (the session's or the poller's caller), kept
 * in memory beside the lease rows. A lease id is a 128-bit secret, so knowing it
 * is what lets a worker act on a job today; the auth issue tightens that here.
 * Beside the token it keeps how many outputs the job's task asks for and the media types
 * they may have, worked out once when the lease is taken, so uploads and complete need not
 * parse the task again.
 */
export class LeaseOwners {
  readonly #leases = new Map<string, { tokenId: string; expectedOutputs: number; mimeTypes: ReadonlySet<string> }>();

  /** mimeTypes: the task kind's fixed set (outputMimeTypes), shared, not copied. */
  record(leaseId: string, tokenId: string, expectedOutputs: number, mimeTypes: ReadonlySet<string>): void {
    this.#leases.set(leaseId, { tokenId, expectedOutputs, mimeTypes });
  }

  forget(leaseId: string): void {
    this.#leases.delete(leaseId);
  }

  tokenOf(leaseId: string): string | undefined {
    return this.#leases.get(leaseId)?.tokenId;
  }

  /** The output media types recorded with the lease, or undefined for a lease not recorded here. */
  mimeTypesOf(leaseId: string): ReadonlySet<string> | undefined {
    return this.#leases.get(leaseId)?.mimeTypes;
  }

  /** The output count recorded with the lease, or undefined for a lease not recorded here (taken before a restart). */
  expectedOutputsOf(leaseId: string): number | undefined {
    return this.#leases.get(leaseId)?.expectedOutputs;
  }
}

/**
 * THE hook for the auth issue: every message that acts on a lease (accept,
 * decline, progress, heartbeat, output chunks, complete, fail, from a session or
 * the polling API) passes through here after the store has matched the lease id.
 * It throws DispatchError("permission_denied") when `ownerTokenId` is set and
 * differs from `caller.tokenId` (a worker touching another worker's lease). An
 * unknown owner (a lease from before a restart) is allowed: the lease id, a
 * 128-bit secret, is then the only proof, as it was when the lease was taken.
 */
export function assertLeaseOwner(ownerTokenId: string | undefined, caller: Caller, _leaseId: string): void {
  if (ownerTokenId !== undefined && ownerTokenId !== caller.tokenId) {
    throw new DispatchError(
      "permission_denied",
      `this lease belongs to another worker's token; ${caller.name} may act only on leases it took`,
    );
  }
}
