import type { StudioContext, StudioModule } from "../context.js";

/** The jobs module. (Placeholder until its issue lands.) */
export function createJobsModule(_ctx: StudioContext): StudioModule {
  return { name: "jobs" };
}
