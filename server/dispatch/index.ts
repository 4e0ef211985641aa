import type { StudioContext, StudioModule } from "../context.js";

/** The dispatch module. (Placeholder until its issue lands.) */
export function createDispatchModule(_ctx: StudioContext): StudioModule {
  return { name: "dispatch" };
}
