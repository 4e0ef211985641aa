import type { StudioContext, StudioModule } from "../context.js";
import type { TextStreams } from "../streams/text-streams.js";
import { outputHttpRoute } from "../outputs/output-http-route.js";
import { OutputStaging } from "../outputs/output-staging.js";
import { OutputStore } from "../outputs/output-store.js";
import { DeclineMemory } from "./decline-memory.js";
import { Dispatcher } from "./dispatcher.js";
import { LeaseOwners } from "./lease-owner.js";
import { createPollApi } from "./poll-api.js";
import { ProgressThrottle } from "./progress-throttle.js";
import { QueueActions } from "./queue-actions.js";
import type { QueueStore } from "./queue-store.js";
import { LeaseReaper } from "./reaper.js";
import { ReplicaSync } from "./replica-sync.js";
import { WorkerRegistry } from "./worker-registry.js";
import { registerDispatchRoutes } from "./worker-service.js";
import { WorkerWatchHub } from "./worker-watch.js";
import { DisabledModels } from "./disabled-models.js";
import { WaitReasons } from "./wait-reasons.js";

export type { QueueStore } from "./queue-store.js";
export { DispatchError, LeaseLostError } from "./dispatch-error.js";
export { assertLeaseOwner } from "./lease-owner.js";

/** How long a worker is not offered a job it declined. */
export const DECLINE_MEMORY_MS = 30_000;

/** The dispatch module plus the parts tests and operators reach into. */
export interface DispatchModule extends StudioModule {
  store: QueueStore;
  registry: WorkerRegistry;
  dispatcher: Dispatcher;
  reaper: LeaseReaper;
  outputs: OutputStore;
  staging: OutputStaging;
  actions: QueueActions;
  /** Why queued jobs wait (JobService annotates what it returns with it). */
  waits: WaitReasons;
  /** Ends a revoked token's waiting long-polls (ClaimJob). */
  endPollsOf(tokenId: string): void;
}

/**
 * Dispatch: worker sessions (WorkerService.Session), the polling API, ListWorkers and WatchWorkers,
 * the lease reaper, the output store with GetJobOutput and GET /jobs/{id}/outputs/{index}.
 */
export function createDispatchModule(ctx: StudioContext, { texts }: { texts?: TextStreams } = {}): DispatchModule {
  const store = ctx.storage.queue;
  // A silent session (no message for a lease TTL) gets no offers until it speaks again.
  const registry = new WorkerRegistry({ now: ctx.now, silentAfterMs: ctx.config.leaseTtlMs });
  const declines = new DeclineMemory(DECLINE_MEMORY_MS, ctx.now);
  const outputs = new OutputStore(ctx.config.dataDir, ctx.config.maxOutputBytes, ctx.storage.blobs);
  const staging = new OutputStaging(outputs);
  const throttle = new ProgressThrottle();
  let dispatcher: Dispatcher | undefined;
  const actions = new QueueActions({
    ctx,
    store,
    registry,
    owners: new LeaseOwners(),
    throttle,
    staging,
    wake: () => dispatcher?.wake(),
  });
  const disabled = new DisabledModels(ctx.storage.registry, {
    onEnabled: () => dispatcher?.wake(),
    onError: (err) => ctx.logger.warn({ err }, "could not read which models are disabled"),
  });
  dispatcher = new Dispatcher({ ctx, store, registry, declines, actions, disabled });
  const reaper = new LeaseReaper({ store, actions, now: ctx.now, logger: ctx.logger }, ctx.config.leaseTtlMs);
  const poll = createPollApi({ ctx, actions, outputs, staging, heldModels: () => disabled.list });
  const d = dispatcher;
  const getJob = (id: string) => store.get(id);
  const cluster = ctx.storage.cluster;
  const replicas =
    cluster && new ReplicaSync({ cluster, registry, dispatcher: d, logger: ctx.logger }, { sweepIntervalMs: ctx.tuning?.replicaSweepMs });
  const listWorkers = replicas ? () => replicas.listWorkers() : async () => registry.all().map(WorkerRegistry.info);
  const workerWatch = new WorkerWatchHub(listWorkers, ctx.events);
  const waits = new WaitReasons({ listWorkers, disabled: () => disabled.names, queue: store, now: ctx.now });
  const shutdown = new AbortController();
  return {
    name: "dispatch",
    store,
    registry,
    dispatcher: d,
    reaper,
    outputs,
    staging,
    actions,
    waits,
    endPollsOf: (tokenId) => poll.revoked(tokenId),
    routes: (router) =>
      registerDispatchRoutes(router, {
        ctx,
        store,
        registry,
        actions,
        dispatcher: d,
        declines,
        outputs,
        staging,
        texts,
        poll,
        getJob,
        listWorkers,
        watchWorkers: (signal) => workerWatch.watch(AbortSignal.any([signal, shutdown.signal])),
      }),
    httpRoutes: [outputHttpRoute(getJob, outputs)],
    async start() {
      await disabled.start();
      // Before serving: outputs moved into the store by a complete whose row a crash then lost.
      const swept = await outputs.blobs.sweep();
      if (swept.length > 0) ctx.logger.warn({ count: swept.length }, "removed stored outputs no job references");
      d.start();
      reaper.start();
      replicas?.start();
      d.wake();
    },
    async stop() {
      shutdown.abort();
      workerWatch.close();
      disabled.stop();
      d.stop();
      replicas?.stop();
      poll.close();
      // Workers see their stream end and reconnect (to this studio when it is back, keeping their leases).
      for (const w of registry.all()) w.end();
      await reaper.stop();
      throttle.clear();
      await d.idle();
      staging.clear();
    },
  };
}
