import type { StudioContext, StudioModule } from "../context.js";

/** The registry module. (Placeholder until its issue lands.) */
export function createRegistryModule(_ctx: StudioContext): StudioModule {
  return { name: "registry" };
}
