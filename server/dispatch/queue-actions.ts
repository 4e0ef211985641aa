import { create } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { expectedOutputCount, outputMimeTypes } from "../../contract/task.js";
import { checkOutputMimeType } from "../outputs/mime-type.js";
import { OfferSchema, type JobOutput, type JobProgress, type Offer, type Task } from "../../gen/studio/v1/job_pb.js";
import type { OutputStaging, StagedOutput } from "../outputs/output-staging.js";
import type { Caller } from "../auth/caller.js";
import type { StudioContext } from "../context.js";
import { leasedTaskOf, outputsToJson, progressToJson, taskFromJson, type JobRow } from "../jobs/job-row.js";
import { sharedModelSourceFromStored } from "../../contract/model-source.js";
import { DispatchError } from "./dispatch-error.js";
import { assertLeaseOwner, LeaseOwners } from "./lease-owner.js";
import type { ProgressThrottle } from "../../contract/progress-throttle.js";
import type { ClaimFilter, LeaseRef, QueueStore, RenewResult } from "./queue-store.js";
import type { WorkerRegistry } from "./worker-registry.js";

/** What QueueActions needs. */
export interface QueueActionsDeps {
  ctx: StudioContext;
  store: QueueStore;
  registry: WorkerRegistry;
  owners: LeaseOwners;
  throttle: ProgressThrottle;
  /** Outputs verified under a lease and waiting for its complete; dropped when the lease ends otherwise. */
  staging: OutputStaging;
  /** Called when a lease ends, so placement can fill the freed slot. */
  wake(): void;
}

/** A job just leased, and the Offer (also the fields of a JobClaim) that tells its worker. */
export interface Claimed {
  row: JobRow;
  offer: Offer;
}

/** Options of the calls that end a lease from the worker's side. */
export interface EndOptions {
  /**
   * Runs once the change committed, after the worker's slot is freed and before
   * placement is woken: a session posts its Receipt here, so the worker always hears
   * the outcome before an offer for the freed slot, whatever the scheduling.
   */
  beforeWake?: () => void;
}

/** Options of a complete. */
export interface CompleteOptions extends EndOptions {
  /** The refusal's text for a wrong output count (the polling API names its own field). */
  countMessage?: (count: number, expected: number) => string;
  /**
   * A streaming worker's next job for the slot the complete frees, claimed in the complete's own
   * transaction (QueueStore.completeAndClaim) with this filter; `take` gets it after beforeWake
   * and before placement wakes (the worker holds it before anything else sees the slot free).
   */
  next?: { filter: ClaimFilter; take(claimed: Claimed): void };
}

/**
 * The queue's rules, shared by streaming sessions and the polling API so both
 * behave the same: every call checks the lease through the store (fencing) and
 * the owner hook, then publishes the change after the transaction committed.
 */
export class QueueActions {
  constructor(readonly deps: QueueActionsDeps) {}

  get #ttl() {
    return this.deps.ctx.config.leaseTtlMs;
  }

  #now() {
    return this.deps.ctx.now();
  }

  /** Publishes a row's new status; `leaseId` names the lease the change ended or created. */
  publish(row: JobRow, leaseId?: string | null, leaseWorker?: string | null): void {
    this.deps.ctx.events.publish({
      jobId: row.id,
      status: row.status,
      model: row.model,
      leaseId: leaseId ?? row.leaseId,
      leaseWorker: leaseWorker ?? row.leaseWorker,
      job: row,
    });
  }

  /**
   * Leases the next job the filter allows to `tokenId`'s caller, or undefined; with the
   * row comes its Offer. The stored task is parsed here once per lease: the offer carries
   * it and the lease record keeps its output count for the uploads and the complete.
   * `take` gets the job before the change is published: the offer leaves before the
   * listeners (log line, metrics, watchers) run.
   */
  async claim(filter: ClaimFilter, tokenId: string, take?: (claimed: Claimed) => void): Promise<Claimed | undefined> {
    const row = await this.deps.store.claim(filter, this.#now(), this.#ttl);
    if (!row) return undefined;
    const claimed = this.#leased(row, tokenId);
    take?.(claimed);
    this.publish(row);
    return claimed;
  }

  /** Records a freshly claimed row's lease for `tokenId` and builds its Offer (parsing the stored task once). */
  #leased(row: JobRow, tokenId: string): Claimed {
    const task = leasedTaskOf(row);
    this.deps.owners.record(row.leaseId!, tokenId, expectedOutputCount(task), outputMimeTypes(task));
    return { row, offer: QueueActions.offerOf(row, task) };
  }

  /**
   * After a reconnect: keeps the listed leases that are still current and were
   * taken by the caller's token (or by an unknown one, from before a restart),
   * recording them under the worker's name; the rest are lost.
   */
  async keep(leaseIds: readonly string[], workerName: string, caller: Caller): Promise<{ kept: JobRow[]; lost: string[] }> {
    const mine: string[] = [];
    const foreign: string[] = [];
    for (const id of leaseIds) {
      try {
        assertLeaseOwner(this.deps.owners.tokenOf(id), caller, id);
        mine.push(id);
      } catch {
        foreign.push(id);
      }
    }
    const { kept, lost } = await this.deps.store.keep(mine, workerName, this.#now(), this.#ttl);
    for (const row of kept) {
      const task = taskFromJson(row.task);
      this.deps.owners.record(row.leaseId!, caller.tokenId, expectedOutputCount(task), outputMimeTypes(task));
      this.deps.registry.release(row.leaseId!);
    }
    return { kept, lost: [...lost, ...foreign] };
  }

  /**
   * The Offer (also the fields of a JobClaim) for a freshly claimed row; `task` when already parsed
   * from it. Its model_source is the shared message for the row's text: an Offer is serialised, never changed.
   */
  static offerOf(row: JobRow, task: Task = taskFromJson(row.task)): Offer {
    return create(OfferSchema, {
      offerId: randomUUID(),
      jobId: row.id,
      leaseId: row.leaseId ?? "",
      leaseExpiresAt: timestampFromMs(row.leaseExpiresAt ?? 0),
      model: row.model,
      task,
      modelSource: sharedModelSourceFromStored(row.modelSource),
      attempt: row.attempts,
    });
  }

  /**
   * How many outputs the task of `row`, a job under `leaseId`, asks for: recorded when
   * the lease was taken or kept, parsed from the row only for a lease not recorded.
   */
  expectedOutputs(leaseId: string, row: JobRow): number {
    return this.deps.owners.expectedOutputsOf(leaseId) ?? expectedOutputCount(taskFromJson(row.task));
  }

  /** The media types the outputs of `row`, a job under `leaseId`, may have: recorded with the lease, else from the row's task. */
  outputMimeTypes(leaseId: string, row: JobRow): ReadonlySet<string> {
    return this.deps.owners.mimeTypesOf(leaseId) ?? outputMimeTypes(taskFromJson(row.task));
  }

  /** The row under a current lease the caller may act on. */
  async current(lease: LeaseRef, caller: Caller): Promise<JobRow> {
    const row = await this.deps.store.current(lease, this.#now());
    assertLeaseOwner(this.deps.owners.tokenOf(lease.leaseId), caller, lease.leaseId);
    return row;
  }

  /**
   * Checks the caller may act on a lease before a store call that itself checks the
   * lease: the owner check is in memory, so when it passes the store's own fencing
   * suffices; when it fails, `current` raises what it always did, in the same order
   * (a stale lease is failed_precondition before a foreign one is permission_denied).
   */
  async #mayAct(lease: LeaseRef, caller: Caller): Promise<void> {
    const owner = this.deps.owners.tokenOf(lease.leaseId);
    if (owner === undefined || owner === caller.tokenId) return;
    await this.current(lease, caller);
  }

  async accept(lease: LeaseRef, caller: Caller): Promise<JobRow> {
    await this.#mayAct(lease, caller);
    const row = await this.deps.store.accept(lease, this.#now(), this.#ttl);
    this.publish(row);
    return row;
  }

  async decline(lease: LeaseRef, caller: Caller, opts: EndOptions = {}): Promise<JobRow> {
    await this.#mayAct(lease, caller);
    const row = await this.deps.store.decline(lease, this.#now());
    this.#ended(lease, opts);
    this.publish(row, lease.leaseId);
    return row;
  }

  /** Stores progress, throttled per job; the first report (OFFERED → RUNNING) and each change of phase are written at once. */
  async progress(lease: LeaseRef, progress: JobProgress, caller: Caller): Promise<void> {
    await this.current(lease, caller);
    const stamped = { ...progress, updateTime: timestampFromMs(this.#now()) };
    await this.deps.throttle.submit(
      lease.jobId,
      async () => {
        const row = await this.deps.store.saveProgress(lease, progressToJson(stamped), this.#now());
        this.publish(row);
      },
      String(progress.phase),
    );
  }

  /** Renews the listed leases that the caller may hold. */
  async renew(leaseIds: readonly string[], caller: Caller): Promise<RenewResult> {
    for (const id of leaseIds) assertLeaseOwner(this.deps.owners.tokenOf(id), caller, id);
    return this.deps.store.renew(leaseIds, this.#now(), this.#ttl);
  }

  /**
   * Commits a job's outputs under its current lease, exactly once: the count must be what
   * the task asks for and indexes 0..n-1 each present (and no other). A lease recorded here
   * for the caller's token is checked by the store's conditional UPDATE alone (fencing), so
   * nothing is read before it; a lease from before a restart, or another token's, is read
   * first. Either way a stale lease is failed_precondition whatever the message carries.
   * The staged bytes enter the output store only here (OutputStaging.commit: moved, then the row).
   */
  async complete(
    lease: LeaseRef,
    outputs: ReadonlyMap<number, StagedOutput>,
    outputCount: number,
    caller: Caller,
    opts: CompleteOptions = {},
  ): Promise<JobRow> {
    let expected = this.deps.owners.expectedOutputsOf(lease.leaseId);
    let mimeTypes = this.deps.owners.mimeTypesOf(lease.leaseId);
    const known = expected !== undefined && mimeTypes !== undefined && this.deps.owners.tokenOf(lease.leaseId) === caller.tokenId;
    if (!known) {
      const row = await this.current(lease, caller);
      expected = this.expectedOutputs(lease.leaseId, row);
      mimeTypes = this.outputMimeTypes(lease.leaseId, row);
    }
    const staged: StagedOutput[] = [];
    try {
      QueueActions.#collect(outputs, outputCount, expected!, staged, opts.countMessage);
      for (const o of staged) checkOutputMimeType(o.meta.mimeType, mimeTypes!, o.meta.index);
    } catch (err) {
      // The lease's state comes first: a stale lease is failed_precondition, whatever the outputs are.
      if (known) await this.current(lease, caller);
      throw err;
    }
    await this.deps.throttle.flush(lease.jobId);
    const json = outputsToJson(staged.map((o): JobOutput => o.meta));
    const now = this.#now();
    const next = opts.next;
    const { row, next: nextRow } = await this.deps.staging.commit(staged, () =>
      next
        ? this.deps.store.completeAndClaim(lease, json, now, { filter: next.filter, ttlMs: this.#ttl })
        : this.deps.store.complete(lease, json, now).then((done) => ({ row: done, next: undefined })),
    );
    const claimed = nextRow ? this.#leased(nextRow, caller.tokenId) : undefined;
    this.#ended(lease, opts, claimed && (() => next!.take(claimed)));
    this.publish(row, lease.leaseId);
    if (nextRow) this.publish(nextRow);
    return row;
  }

  /** Puts outputs 0..expected-1 in order into `staged`, refusing a wrong count, a missing index or one out of range. */
  static #collect(
    outputs: ReadonlyMap<number, StagedOutput>,
    outputCount: number,
    expected: number,
    staged: StagedOutput[],
    countMessage = (n: number, e: number) => `output_count is ${n}, the task asks for ${e}`,
  ): void {
    if (outputCount !== expected) throw new DispatchError("invalid_argument", countMessage(outputCount, expected));
    for (const i of outputs.keys())
      if (i >= expected) throw new DispatchError("invalid_argument", `output index ${i} is out of range: the task asks for ${expected}`);
    for (let i = 0; i < expected; i++) {
      const o = outputs.get(i);
      if (!o) throw new DispatchError("failed_precondition", `output ${i} was not received in full before complete`);
      staged.push(o);
    }
  }

  async fail(lease: LeaseRef, error: string, retryable: boolean, caller: Caller, opts: EndOptions = {}): Promise<JobRow> {
    await this.#mayAct(lease, caller);
    await this.deps.throttle.flush(lease.jobId);
    const row = await this.deps.store.fail(lease, error, retryable, this.#now());
    this.#ended(lease, opts);
    this.publish(row, lease.leaseId);
    return row;
  }

  /** Forgets what is kept about a lease that ended (here or elsewhere: cancel, expiry), its staged outputs included. */
  leaseGone(jobId: string, leaseId: string): void {
    this.deps.throttle.drop(jobId);
    this.deps.owners.forget(leaseId);
    this.deps.staging.drop(leaseId);
  }

  /**
   * The lease ended by the worker's own message: free its slot, let the caller post
   * its answer (beforeWake), hand over the job claimed for the slot with it (takeNext),
   * and only then wake placement, so an offer for the freed slot is queued behind that answer.
   */
  #ended(lease: LeaseRef, opts: EndOptions, takeNext?: () => void) {
    this.leaseGone(lease.jobId, lease.leaseId);
    this.deps.registry.release(lease.leaseId);
    opts.beforeWake?.();
    takeNext?.();
    this.deps.wake();
  }
}
