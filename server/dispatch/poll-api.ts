import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { engineName } from "../../contract/names.js";
import { JobClaimSchema, JobProgressSchema } from "../../gen/studio/v1/job_pb.js";
import {
  ClaimJobResponseSchema,
  type ClaimJobRequest,
  type ClaimJobResponse,
  type CompleteJobRequest,
  type CompleteJobStreamRequest,
  type FailJobRequest,
  type HeartbeatRequest,
  type ReportProgressRequest,
} from "../../gen/studio/v1/worker_service_pb.js";
import { callerOf } from "../auth/caller.js";
import type { StudioContext } from "../context.js";
import { jobFromRow } from "../jobs/job-row.js";
import type { OutputStore } from "../outputs/output-store.js";
import { verifyInlineOutputs } from "../outputs/inline-outputs.js";
import type { OutputStaging, StagedOutput } from "../outputs/output-staging.js";
import { SessionUploads } from "./session-uploads.js";
import type { QueueActions } from "./queue-actions.js";
import { MAX_LEASES_PER_CALL } from "./queue-store.js";

/** The longest a ClaimJob may wait for a job. */
export const MAX_CLAIM_WAIT_MS = 30_000;

const bad = (message: string) => new ConnectError(message, Code.InvalidArgument);

/**
 * The polling API: unary twins of the session messages for older workers and
 * other languages, on the same queue and the same QueueActions rules.
 */
export function createPollApi(deps: {
  ctx: StudioContext;
  actions: QueueActions;
  outputs: OutputStore;
  staging: OutputStaging;
  /** Models whose queued jobs are held (disabled after they were queued). */
  heldModels?: () => readonly string[];
}) {
  const { ctx, actions, outputs, staging } = deps;
  // Fired on shutdown so that long-polls answer "no job" at once instead of holding the listener open.
  const closing = new AbortController();
  /** Waiting long-polls by the token that made them: a revoked token's polls end at once (UNAUTHENTICATED). */
  const waiting = new Map<string, Set<() => void>>();
  /**
   * Tokens revoked since start (ids are never reused): a poll authenticated just before its
   * token's revocation arrived, but registered just after, is refused here instead of waiting.
   */
  const revokedTokens = new Set<string>();

  async function claimJob(req: ClaimJobRequest, hctx: HandlerContext): Promise<ClaimJobResponse> {
    const name = req.workerName.trim();
    if (name === "" || name.length > 128) throw bad(`worker_name must be 1 to 128 characters (got ${JSON.stringify(req.workerName.slice(0, 140))})`);
    if (req.engines.length === 0) throw bad("engines must list at least one engine the worker can run");
    const engines = req.engines.map((e) => engineName(e) ?? (() => { throw bad(`engines holds an unknown engine (${e})`); })());
    if (req.waitMs > MAX_CLAIM_WAIT_MS) throw bad(`wait_ms must be at most ${MAX_CLAIM_WAIT_MS} (got ${req.waitMs})`);
    const caller = callerOf(hctx);
    const deadline = Date.now() + req.waitMs;
    let revoked = false;
    let onRevoke!: () => void;
    const revocation = new Promise<void>((r) => (onRevoke = () => ((revoked = true), r())));
    const mine = waiting.get(caller.tokenId) ?? new Set();
    waiting.set(caller.tokenId, mine.add(onRevoke));
    if (revokedTokens.has(caller.tokenId)) onRevoke();
    try {
      for (;;) {
        let wake!: () => void;
        const woken = new Promise<void>((r) => (wake = r));
        const unsubscribe = ctx.events.subscribe((c) => c.status === "QUEUED" && wake());
        try {
          if (revoked) throw new ConnectError(`token ${caller.tokenId} (${caller.name}) was revoked`, Code.Unauthenticated);
          const claimed = await actions.claim({ workerName: name, engines, excludeModels: deps.heldModels?.() }, caller.tokenId);
          if (claimed) {
            const { $typeName: _, $unknown: __, ...fields } = claimed.offer;
            return create(ClaimJobResponseSchema, { claim: create(JobClaimSchema, fields) });
          }
          const remaining = deadline - Date.now();
          if (remaining <= 0 || hctx.signal.aborted || closing.signal.aborted) return create(ClaimJobResponseSchema);
          let timer: ReturnType<typeof setTimeout> | undefined;
          await Promise.race([
            woken,
            revocation,
            new Promise<void>((r) => (timer = setTimeout(r, remaining))),
            new Promise<void>((r) => hctx.signal.addEventListener("abort", () => r(), { once: true })),
            new Promise<void>((r) => closing.signal.addEventListener("abort", () => r(), { once: true })),
          ]);
          clearTimeout(timer);
          if (revoked) throw new ConnectError(`token ${caller.tokenId} (${caller.name}) was revoked`, Code.Unauthenticated);
        } finally {
          unsubscribe();
        }
      }
    } finally {
      mine.delete(onRevoke);
      if (mine.size === 0) waiting.delete(caller.tokenId);
    }
  }

  return {
    claimJob,

    /** Ends every waiting long-poll (shutdown). */
    close: () => closing.abort(),

    /** Ends the waiting long-polls of a revoked token (made here; another replica's revocation arrives as a notification). */
    revoked(tokenId: string): void {
      if (revokedTokens.size >= 100_000) revokedTokens.clear();
      revokedTokens.add(tokenId);
      for (const end of waiting.get(tokenId) ?? []) end();
    },

    async heartbeat(req: HeartbeatRequest, hctx: HandlerContext) {
      if (req.leaseIds.length > MAX_LEASES_PER_CALL) throw bad(`lease_ids may list at most ${MAX_LEASES_PER_CALL} leases`);
      const r = await actions.renew(req.leaseIds, callerOf(hctx));
      return { renewedLeaseIds: r.renewed, lostLeaseIds: r.lost, leaseExpiresAt: timestampFromMs(r.expiresAt) };
    },

    async reportProgress(req: ReportProgressRequest, hctx: HandlerContext) {
      await actions.progress(req, req.progress ?? create(JobProgressSchema), callerOf(hctx));
      return {};
    },

    /** Outputs inline: each bounded by maxOutputBytes, its digest checked; stored by the complete's commit only. */
    async completeJob(req: CompleteJobRequest, hctx: HandlerContext) {
      const caller = callerOf(hctx);
      let received;
      try {
        received = verifyInlineOutputs(req.outputs, req.outputs.length, outputs);
      } catch (err) {
        // A stale lease is failed_precondition whatever the outputs are.
        await actions.current(req, caller);
        throw err;
      }
      const row = await actions.complete(req, received, req.outputs.length, caller, {
        countMessage: (n, expected) => `outputs holds ${n} outputs, the task asks for ${expected}`,
      });
      return { job: jobFromRow(row) };
    },

    /**
     * CompleteJob for outputs of any size: OutputChunks (each output in order, up to
     * OUTPUT_CHUNK_BYTES each) staged as a session stages them, then the complete, which may
     * carry small outputs inline too. Everything lives in this one call, so it needs no state
     * between calls (nor the same replica twice); a stream that ends without a complete, or
     * fails, commits nothing and leaves nothing staged.
     */
    async completeJobStream(requests: AsyncIterable<CompleteJobStreamRequest>, hctx: HandlerContext) {
      const caller = callerOf(hctx);
      const uploads = new SessionUploads(outputs, actions, staging);
      let lease: { jobId: string; leaseId: string } | undefined;
      const sameLease = (l: { jobId: string; leaseId: string }, what: string) => {
        lease ??= { jobId: l.jobId, leaseId: l.leaseId };
        if (l.jobId !== lease.jobId || l.leaseId !== lease.leaseId)
          throw bad(`${what} names job ${l.jobId} lease ${l.leaseId}, but this stream is for job ${lease.jobId} lease ${lease.leaseId}`);
      };
      try {
        let complete: CompleteJobRequest | undefined;
        for await (const m of requests) {
          if (complete) throw bad("complete must be the last message of the stream");
          switch (m.message.case) {
            case "outputChunk":
              sameLease(m.message.value, "an output_chunk");
              await uploads.receive(m.message.value, caller);
              break;
            case "complete":
              complete = m.message.value;
              sameLease(complete, "the complete");
              break;
            default:
              throw bad("a stream message must set output_chunk or complete");
          }
        }
        if (!complete) throw bad("the stream ended without a complete: nothing was committed");
        const chunked = uploads.take(complete.leaseId);
        const count = chunked.size + complete.outputs.length;
        let received: Map<number, StagedOutput>;
        try {
          received = verifyInlineOutputs(complete.outputs, count, outputs);
          for (const [i, o] of chunked) {
            if (received.has(i)) throw bad(`output ${i} was sent both as chunks and inline`);
            received.set(i, o);
          }
        } catch (err) {
          await actions.current(complete, caller);
          throw err;
        }
        const row = await actions.complete(complete, received, count, caller, {
          countMessage: (n, expected) => `the stream carries ${n} outputs, the task asks for ${expected}`,
        });
        return { job: jobFromRow(row) };
      } finally {
        if (lease) uploads.drop(lease.leaseId);
      }
    },

    async failJob(req: FailJobRequest, hctx: HandlerContext) {
      const row = await actions.fail(req, req.error, req.retryable, callerOf(hctx));
      return { job: jobFromRow(row) };
    },
  };
}
