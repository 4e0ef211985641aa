import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  SessionResponseSchema,
  type JobComplete,
  type SessionRequest,
  type SessionResponse,
} from "../../gen/studio/v1/worker_service_pb.js";
import { JobProgressSchema, type TextDelta } from "../../gen/studio/v1/job_pb.js";
import { callerOf, type Caller } from "../auth/caller.js";
import type { StudioContext } from "../context.js";
import type { OutputStore } from "../outputs/output-store.js";
import type { OutputStaging } from "../outputs/output-staging.js";
import { verifyInlineOutputs } from "../outputs/inline-outputs.js";
import { OUTPUT_CHUNK_BYTES } from "../outputs/output-store.js";
import type { StagedOutput } from "../outputs/output-staging.js";
import { DispatchError } from "./dispatch-error.js";
import { SessionOutbox } from "./session-outbox.js";
import type { DeclineMemory } from "./decline-memory.js";
import type { Dispatcher } from "./dispatcher.js";
import { refusalOf } from "./dispatch-error.js";
import { checkCacheUpdate, checkGpus, checkHello } from "./hello.js";
import { WorkerGpus } from "./worker-gpus.js";
import { probePeer } from "./peer-liveness.js";
import type { Claimed, QueueActions } from "./queue-actions.js";
import { MAX_LEASES_PER_CALL, type QueueStore } from "./queue-store.js";
import { SessionUploads } from "./session-uploads.js";
import { MAX_CACHED_DIGESTS, MAX_CACHED_URLS, WorkerRegistry, type WorkerEntry } from "./worker-registry.js";

/** What a session needs. */
export interface SessionDeps {
  ctx: StudioContext;
  store: QueueStore;
  registry: WorkerRegistry;
  actions: QueueActions;
  dispatcher: Dispatcher;
  declines: DeclineMemory;
  outputs: OutputStore;
  staging: OutputStaging;
  /** Where text pieces go (absent: they are dropped, as a studio without streaming would). */
  texts?: { receive(delta: TextDelta): void };
}

/**
 * The most output bytes, all outputs together, a JobComplete may carry inline (no more than one
 * OutputChunk carries): small outputs (text, thumbnails) then cost one message, larger ones stream as chunks.
 */
export const MAX_INLINE_OUTPUT_BYTES = OUTPUT_CHUNK_BYTES;

const respond = (message: MessageInitShape<typeof SessionResponseSchema>["message"]) =>
  create(SessionResponseSchema, { message });

/**
 * WorkerService.Session: hello first (else INVALID_ARGUMENT), welcome back, then
 * requests are read in order while offers, cancels and receipts are pushed
 * through a per-session queue at any time. When the stream ends the worker is
 * gone: its leases are left to expire, or to be kept by a reconnect that names them.
 * A worker whose hello sets accepts_batches gets what is ready at once in one message.
 */
export async function* runSession(
  deps: SessionDeps,
  requests: AsyncIterable<SessionRequest>,
  handlerCtx: HandlerContext,
): AsyncGenerator<SessionResponse> {
  const caller = callerOf(handlerCtx);
  const it = requests[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done || first.value.message.case !== "hello")
    throw new ConnectError("the first message of a session must be hello", Code.InvalidArgument);
  const hello = checkHello(first.value.message.value);

  const out = new SessionOutbox(first.value.message.value.acceptsBatches);
  const now = deps.ctx.now();
  const worker: WorkerEntry = {
    id: WorkerRegistry.newId(),
    name: hello.name,
    version: hello.version,
    engines: hello.engines,
    slots: hello.slots,
    leases: new Map(),
    cached: new Set(hello.cachedSha256),
    cachedUrls: new Set(hello.cachedUrls),
    labels: hello.labels,
    gpus: hello.gpus.length > 0 ? new WorkerGpus(hello.gpus) : undefined,
    tokenId: caller.tokenId,
    connectTime: now,
    lastHeartbeat: now,
    draining: false,
    send: (m) => out.push(m),
    end: () => out.close(),
  };
  const { kept, lost } = await deps.actions.keep(hello.leaseIds, worker.name, caller);
  for (const row of kept) {
    worker.leases.set(row.leaseId!, row.id);
    worker.gpus?.assign(row.leaseId!, hello.leaseGpus[row.leaseId!], row.vramBytes ?? 0);
  }
  deps.registry.add(worker);
  const stopProbe = probePeer(
    { registry: deps.registry, dispatcher: deps.dispatcher, now: deps.ctx.now, intervalMs: deps.ctx.config.heartbeatIntervalMs },
    worker,
    handlerCtx,
  );
  // Alone and first: what is pushed from here on (offers) follows it, batched or not.
  const welcome = respond({
    case: "welcome",
    value: {
      workerId: worker.id,
      heartbeatIntervalMs: deps.ctx.config.heartbeatIntervalMs,
      leaseTtlMs: deps.ctx.config.leaseTtlMs,
      keptLeaseIds: kept.map((r) => r.leaseId!),
      lostLeaseIds: lost,
      maxInlineOutputBytes: Math.min(MAX_INLINE_OUTPUT_BYTES, deps.outputs.maxOutputBytes),
    },
  });
  deps.ctx.logger.info({ worker: worker.name, workerId: worker.id, kept: kept.length }, "worker connected");
  deps.dispatcher.wake();

  const uploads = new SessionUploads(deps.outputs, deps.actions, deps.staging);
  const reader = (async () => {
    for (let next = await it.next(); !next.done; next = await it.next())
      await handle(deps, worker, uploads, caller, next.value);
  })();
  handlerCtx.signal.addEventListener("abort", () => out.close(), { once: true });
  reader.then(
    () => out.close(),
    (err: unknown) => out.close(err),
  );
  try {
    yield welcome;
    yield* out;
  } finally {
    stopProbe();
    deps.registry.remove(worker.id);
    deps.declines.forgetWorker(worker.id);
    uploads.clear();
    deps.ctx.logger.info({ worker: worker.name, workerId: worker.id, draining: worker.draining }, "worker gone");
    deps.dispatcher.wake();
  }
}

async function handle(deps: SessionDeps, worker: WorkerEntry, uploads: SessionUploads, caller: Caller, req: SessionRequest) {
  const msg = req.message;
  // Any message shows the worker is alive: a silent one (no offers) becomes eligible again.
  const wasSilent = deps.registry.isSilent(worker);
  worker.lastHeartbeat = deps.ctx.now();
  worker.stalled = false;
  if (wasSilent) deps.dispatcher.wake();
  /**
   * Runs an act and answers with a Receipt. The act is handed `posted`, which it runs
   * once its change committed and before it wakes placement (EndOptions.beforeWake):
   * the Receipt is queued on the stream before any offer for the slot it freed.
   */
  const receipt = async (jobId: string, leaseId: string, act: (posted: () => void) => Promise<unknown>) => {
    let sent = false;
    const ok = () => {
      if (sent) return;
      sent = true;
      worker.send(respond({ case: "receipt", value: { jobId, leaseId, ok: true } }));
    };
    try {
      await act(ok);
      ok();
    } catch (err) {
      const refusal = refusalOf(err);
      if (!refusal) throw err;
      if (sent) {
        deps.ctx.logger.warn({ jobId, leaseId, err }, "refusal after the receipt was sent");
        return;
      }
      worker.send(respond({ case: "receipt", value: { jobId, leaseId, ok: false, ...refusal } }));
    }
  };
  switch (msg.case) {
    case "hello":
      throw new ConnectError("hello may only be the first message of a session", Code.InvalidArgument);
    case "heartbeat": {
      const listed = msg.value.leaseIds.slice(0, MAX_LEASES_PER_CALL);
      const held = listed.filter((id) => worker.leases.has(id));
      const { lost } = await deps.actions.renew(held, caller);
      for (const id of [...lost, ...listed.filter((x) => !worker.leases.has(x))]) {
        const jobId = worker.leases.get(id) ?? "";
        deps.registry.drop(worker, id);
        worker.send(respond({ case: "cancel", value: { jobId, leaseId: id, reason: "the lease is no longer current" } }));
      }
      return;
    }
    case "accept":
      return receipt(msg.value.jobId, msg.value.leaseId, () => deps.actions.accept(msg.value, caller));
    case "decline":
      return receipt(msg.value.jobId, msg.value.leaseId, async (posted) => {
        // Remembered first: the decline's QUEUED event starts a placement round that must already skip this worker.
        if (worker.leases.has(msg.value.leaseId)) deps.declines.add(worker.id, msg.value.jobId);
        await deps.actions.decline(msg.value, caller, { beforeWake: posted });
        uploads.drop(msg.value.leaseId);
      });
    case "progress":
      try {
        await deps.actions.progress(msg.value, msg.value.progress ?? create(JobProgressSchema), caller);
      } catch (err) {
        if (!refusalOf(err)) throw err;
        deps.registry.drop(worker, msg.value.leaseId);
        worker.send(respond({ case: "cancel", value: { jobId: msg.value.jobId, leaseId: msg.value.leaseId, reason: refusalOf(err)!.message } }));
      }
      return;
    case "outputChunk":
      try {
        await uploads.receive(msg.value, caller);
      } catch (err) {
        const refusal = refusalOf(err);
        if (!refusal) throw err;
        worker.send(
          respond({ case: "receipt", value: { jobId: msg.value.jobId, leaseId: msg.value.leaseId, ok: false, ...refusal, outputIndex: msg.value.index } }),
        );
      }
      return;
    case "complete":
      return receipt(msg.value.jobId, msg.value.leaseId, async (posted) => {
        const outputs = await withInline(deps, caller, msg.value, uploads.take(msg.value.leaseId));
        // The worker's next job is claimed in the complete's transaction and leaves with its receipt.
        const filter = deps.dispatcher.refillFilter(worker, msg.value.leaseId);
        const next = filter && { filter, take: (claimed: Claimed) => deps.dispatcher.deliver(worker, claimed) };
        await deps.actions.complete(msg.value, outputs, msg.value.outputCount, caller, { beforeWake: posted, next });
        uploads.drop(msg.value.leaseId);
      });
    case "fail":
      return receipt(msg.value.jobId, msg.value.leaseId, async (posted) => {
        await deps.actions.fail(msg.value, msg.value.error, msg.value.retryable, caller, { beforeWake: posted });
        uploads.drop(msg.value.leaseId);
      });
    case "textDelta": {
      // A piece under a lease this worker no longer holds is dropped: the job is someone else's now.
      const { jobId, leaseId, delta } = msg.value;
      if (!delta || worker.leases.get(leaseId) !== jobId) return;
      delta.jobId = jobId;
      deps.texts?.receive(delta);
      return;
    }
    case "drain":
      worker.draining = true;
      return;
    case "gpuUpdate": {
      if (!worker.gpus) throw new ConnectError("gpu_update: this worker's hello listed no GPUs", Code.InvalidArgument);
      const gpus = msg.value.gpus;
      checkGpus(gpus, "gpu_update: gpus");
      const known = worker.gpus.info();
      if (gpus.length !== known.length || gpus.some((g) => !known.some((k) => k.index === g.index && k.slots === g.slots)))
        throw new ConnectError("gpu_update: gpus must list the hello's GPUs, with the same indexes and slots", Code.InvalidArgument);
      const before = worker.gpus.maxRoom;
      worker.gpus.update(gpus);
      // More room may fit a queued job that did not fit before.
      if (worker.gpus.maxRoom > before) deps.dispatcher.wake();
      return;
    }
    case "cacheUpdate": {
      checkCacheUpdate(msg.value);
      for (const s of msg.value.removedSha256) worker.cached.delete(s);
      for (const s of msg.value.addedSha256) if (worker.cached.size < MAX_CACHED_DIGESTS) worker.cached.add(s);
      for (const u of msg.value.removedUrls) worker.cachedUrls.delete(u);
      for (const u of msg.value.addedUrls) if (worker.cachedUrls.size < MAX_CACHED_URLS) worker.cachedUrls.add(u);
      deps.dispatcher.wake();
      return;
    }
    default:
      throw new ConnectError("a session message must set one of its fields", Code.InvalidArgument);
  }
}

/**
 * The outputs a complete commits: those staged from OutputChunks and those it carries inline
 * (checked here: within MAX_INLINE_OUTPUT_BYTES in all, each digest verified), one way per index.
 * A refusal checks the lease first, so a stale lease is failed_precondition whatever it carries.
 */
async function withInline(
  deps: SessionDeps,
  caller: Caller,
  complete: JobComplete,
  staged: ReadonlyMap<number, StagedOutput>,
): Promise<ReadonlyMap<number, StagedOutput>> {
  if (complete.outputs.length === 0) return staged;
  try {
    let bytes = 0;
    for (const o of complete.outputs) bytes += o.data.byteLength;
    const limit = Math.min(MAX_INLINE_OUTPUT_BYTES, deps.outputs.maxOutputBytes);
    if (bytes > limit)
      throw new DispatchError(
        "resource_exhausted",
        `complete carries ${bytes} bytes of outputs inline, more than the ${limit} the studio takes inline (send them as output chunks)`,
      );
    const inline = verifyInlineOutputs(complete.outputs, complete.outputCount, deps.outputs);
    if (staged.size === 0) return inline;
    for (const i of inline.keys())
      if (staged.has(i)) throw new DispatchError("invalid_argument", `output ${i} was sent both as chunks and inline`);
    return new Map([...staged, ...inline]);
  } catch (err) {
    await deps.actions.current(complete, caller);
    throw err;
  }
}
