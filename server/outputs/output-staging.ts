import type { JobOutput } from "../../gen/studio/v1/job_pb.js";
import type { OutputStore, VerifiedOutput } from "./output-store.js";

/**
 * The most bytes of staged outputs held in memory, over all leases; past it, small outputs
 * wait in temp files like large ones (a worker holds up to 64 slots × 16 outputs).
 */
export const STAGED_MEMORY_BYTES = 64 * 1024 * 1024;

/** A verified output waiting for its job's complete: what the job row will say, and the bytes. */
export interface StagedOutput {
  meta: JobOutput;
  verified: VerifiedOutput;
}

/**
 * Verified outputs held per lease until the job completes. Nothing reaches the
 * content-addressed store before the complete transaction: a job that fails, is
 * cancelled, declined or loses its lease leaves no file behind (its staged bytes
 * are dropped when the lease ends, and temp files are swept at startup), so a
 * worker token cannot fill the disk with outputs no job keeps. What one lease may
 * stage is bounded: one output per index below the task's output count (checked
 * before an upload starts), each at most the store's maxOutputBytes; bytes held in
 * memory are bounded over all leases by STAGED_MEMORY_BYTES.
 *
 * Commit order (see `commit`): the bytes are moved into the store first, then the
 * job row is committed. A crash between the two leaves a stored file no job
 * references, which the blob store's sweep deletes; the
 * other order could commit a row naming bytes that a crash then lost.
 */
export class OutputStaging {
  readonly #byLease = new Map<string, Map<number, StagedOutput>>();
  /** Digests a commit in progress moved into the store (or found there), so a failed commit elsewhere does not remove them. */
  readonly #pins = new Map<string, number>();
  /** Bytes of staged outputs held in memory. */
  #memoryBytes = 0;

  constructor(
    readonly store: OutputStore,
    readonly memoryBudget = STAGED_MEMORY_BYTES,
  ) {}

  /** Bytes of staged outputs held in memory now. */
  get memoryBytes(): number {
    return this.#memoryBytes;
  }

  /** Stages an output under a lease; a second upload of the same index replaces the first. */
  add(leaseId: string, staged: StagedOutput): void {
    let outputs = this.#byLease.get(leaseId);
    if (!outputs) this.#byLease.set(leaseId, (outputs = new Map()));
    const old = outputs.get(staged.meta.index);
    if (old) this.#forget(old);
    let verified = staged.verified;
    if (verified.bytes !== undefined) {
      if (this.#memoryBytes + verified.size > this.memoryBudget) verified = this.store.spill(verified);
      else this.#memoryBytes += verified.size;
    }
    outputs.set(staged.meta.index, { meta: staged.meta, verified });
  }

  #forget(o: StagedOutput) {
    if (o.verified.bytes !== undefined) this.#memoryBytes -= o.verified.size;
    this.store.discard(o.verified);
  }

  /** The outputs staged under a lease, by index. */
  of(leaseId: string): ReadonlyMap<number, StagedOutput> {
    return this.#byLease.get(leaseId) ?? new Map();
  }

  /** Bytes staged under a lease. */
  stagedBytes(leaseId: string): number {
    let n = 0;
    for (const o of this.of(leaseId).values()) n += o.verified.size;
    return n;
  }

  /** Leases with staged outputs. */
  get leaseCount(): number {
    return this.#byLease.size;
  }

  /** Drops a lease's staged outputs (its lease ended: completed, failed, expired, cancelled, declined). */
  drop(leaseId: string): void {
    const outputs = this.#byLease.get(leaseId);
    if (!outputs) return;
    this.#byLease.delete(leaseId);
    for (const o of outputs.values()) this.#forget(o);
  }

  /** Drops everything (the studio stops; temp files left by a crash are swept at startup). */
  clear(): void {
    for (const leaseId of [...this.#byLease.keys()]) this.drop(leaseId);
  }

  /**
   * Moves `outputs` into the store, then runs `commitRow` (the job's complete
   * transaction). Move first: a crash after the move and before the row leaves only
   * an unreferenced file, swept at startup; never a row naming missing bytes. When
   * `commitRow` fails (the lease was lost meanwhile), the bytes this call stored are
   * removed unless another commit here holds them or a job row references them.
   */
  async commit<T>(outputs: readonly StagedOutput[], commitRow: () => Promise<T>): Promise<T> {
    const shas = outputs.map((o) => o.verified.sha256);
    for (const s of shas) this.#pins.set(s, (this.#pins.get(s) ?? 0) + 1);
    const created: string[] = [];
    try {
      for (const o of outputs) if (await this.store.promote(o.verified)) created.push(o.verified.sha256);
      return await commitRow();
    } catch (err) {
      for (const s of created) if (this.#pins.get(s) === 1) await this.store.blobs.removeIfUnreferenced(s);
      throw err;
    } finally {
      for (const s of shas) {
        const n = (this.#pins.get(s) ?? 1) - 1;
        if (n > 0) this.#pins.set(s, n);
        else this.#pins.delete(s);
      }
    }
  }
}
