import type { StudioContext, StudioModule } from "../context.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import type { ModelRegistry } from "./model-registry.js";
import { createRegistryService } from "./registry-service.js";

export type { ModelRegistry, ResolvedModel } from "./model-registry.js";
export { RegistryError, type RegistryErrorCode } from "./registry-errors.js";

/** The registry module: its store and RegistryService. */
export interface RegistryModule extends StudioModule {
  registry: ModelRegistry;
}

/** The registry module; the jobs module resolves model names through its `registry`. */
export function createRegistryModule(ctx: StudioContext): RegistryModule {
  const registry = ctx.storage.registry;
  const service = createRegistryService({ registry, verifyUrlTimeoutMs: ctx.config.verifyUrlTimeoutMs });
  return {
    name: "registry",
    registry,
    routes: (router) => router.service(RegistryService, service),
  };
}
