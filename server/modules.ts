import type { StudioContext, StudioModule } from "./context.js";
import { createRegistryModule } from "./registry/index.js";
import { createJobsModule } from "./jobs/index.js";
import { createDispatchModule } from "./dispatch/index.js";
import { createAuthModule } from "./auth/index.js";
import { createOpsModule, meterDispatch, withRequestLimits } from "./ops/index.js";
import { endSessionsOnRevoke } from "./auth/revoke-sessions.js";
import { createWebModule } from "./web/index.js";
import { createOpenAiModule } from "./openai/index.js";
import { createStreamsModule } from "./streams/index.js";

/**
 * The studio's parts, in the order their interceptors run and they start.
 * Auth comes first so that nothing runs for a caller it refuses; only ops' request
 * log wraps it, so that refused calls are logged too. Every module's services get
 * the per-service message limits, and plain routes outside ops/web need a token.
 */
export function createModules(ctx: StudioContext): StudioModule[] {
  const streams = createStreamsModule(ctx);
  const dispatch = createDispatchModule(ctx, { texts: streams.texts });
  const ops = createOpsModule(ctx);
  const auth = createAuthModule(ctx);
  meterDispatch(ops.metrics, dispatch);
  endSessionsOnRevoke(auth.events, dispatch.registry, (worker) => ctx.logger.info({ worker }, "session ended: token revoked"));
  auth.events.onRevoke((tokenId) => dispatch.endPollsOf(tokenId));
  const jobs = createJobsModule(ctx, { waits: dispatch.waits, texts: streams.texts });
  const openai = createOpenAiModule(ctx, { jobs, dispatch, texts: streams.texts });
  return withRequestLimits(
    auth.protectModules([ops, auth, createRegistryModule(ctx), streams, jobs, dispatch, openai, createWebModule(ctx)]),
  );
}
