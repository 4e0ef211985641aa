import type { StudioContext, StudioModule } from "./context.js";
import { createRegistryModule } from "./registry/index.js";
import { createJobsModule } from "./jobs/index.js";
import { createDispatchModule } from "./dispatch/index.js";

/**
 * The studio's parts, in the order their interceptors run and they start.
 * Auth comes first so that nothing runs for a caller it refuses.
 */
export function createModules(ctx: StudioContext): StudioModule[] {
  const dispatch = createDispatchModule(ctx);
  return [createRegistryModule(ctx), createJobsModule(ctx), dispatch];
}
