import type { StudioContext, StudioModule } from "../context.js";
import { outputHttpRoute } from "../outputs/output-http-route.js";
import { OutputStore } from "../outputs/output-store.js";
import { DeclineMemory } from "./decline-memory.js";
import { Dispatcher } from "./dispatcher.js";
import { LeaseOwners } from "./lease-owner.js";
import { createPollApi } from "./poll-api.js";
import { ProgressThrottle } from "./progress-throttle.js";
import { QueueActions } from "./queue-actions.js";
import type { QueueStore } from "./queue-store.js";
import { LeaseReaper } from "./reaper.js";
import { createSqliteQueueStore } from "./sqlite/sqlite-queue-store.js";
import { WorkerRegistry } from "./worker-registry.js";
import { registerDispatchRoutes } from "./worker-service.js";

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
  actions: QueueActions;
}

/**
 * Dispatch: worker sessions (WorkerService.Session), the polling API, ListWorkers,
 * the lease reaper, the output store with GetJobOutput and GET /jobs/{id}/outputs/{index}.
 */
export function createDispatchModule(ctx: StudioContext): DispatchModule {
  const store = createSqliteQueueStore(ctx.db);
  const registry = new WorkerRegistry();
  const declines = new DeclineMemory(DECLINE_MEMORY_MS, ctx.now);
  const outputs = new OutputStore(ctx.config.dataDir, ctx.config.maxOutputBytes);
  const throttle = new ProgressThrottle();
  let dispatcher: Dispatcher | undefined;
  const actions = new QueueActions({
    ctx,
    store,
    registry,
    owners: new LeaseOwners(),
    throttle,
    wake: () => dispatcher?.wake(),
  });
  dispatcher = new Dispatcher({ ctx, store, registry, declines, actions });
  const reaper = new LeaseReaper({ store, actions, now: ctx.now, logger: ctx.logger }, ctx.config.leaseTtlMs);
  const poll = createPollApi({ ctx, actions, outputs });
  const d = dispatcher;
  return {
    name: "dispatch",
    store,
    registry,
    dispatcher: d,
    reaper,
    outputs,
    actions,
    routes: (router) => registerDispatchRoutes(router, { ctx, store, registry, actions, dispatcher: d, declines, outputs, poll, db: ctx.db }),
    httpRoutes: [outputHttpRoute(ctx.db, outputs)],
    start() {
      d.start();
      reaper.start();
      d.wake();
    },
    async stop() {
      d.stop();
      poll.close();
      // Workers see their stream end and reconnect (to this studio when it is back, keeping their leases).
      for (const w of registry.all()) w.end();
      await reaper.stop();
      throttle.clear();
      await d.idle();
    },
  };
}
