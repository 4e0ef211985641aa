import type { ConnectRouter } from "@connectrpc/connect";
import type { StudioModule } from "../context.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * The largest request message each service reads; bigger ones get RESOURCE_EXHAUSTED
 * before a handler runs. Registry messages carry one ModelSource (at most 32 files,
 * 4 KiB URLs), jobs one task (at most 256,000 characters of text, up to 4 bytes each),
 * tokens a name; WorkerService carries 1 MiB output chunks and a polling worker's
 * inline outputs, so it gets the studio-wide maximum.
 */
export const SERVICE_READ_MAX_BYTES: Readonly<Record<string, number>> = {
  "studio.v1.TokenService": 16 * KiB,
  "studio.v1.RegistryService": 512 * KiB,
  "studio.v1.JobService": 2 * MiB,
  "studio.v1.WorkerService": 8 * MiB,
  // A reflection request names one file or symbol.
  "grpc.reflection.v1.ServerReflection": 16 * KiB,
  "grpc.reflection.v1alpha.ServerReflection": 16 * KiB,
};

/**
 * A router that adds the service's readMaxBytes to every service a module registers
 * (a module's own options still win). app.ts's adapter-wide limit stays the ceiling.
 */
export function limitRouter(router: ConnectRouter): ConnectRouter {
  const limited: ConnectRouter = Object.create(router);
  limited.service = (service, implementation, options) => {
    const readMaxBytes = SERVICE_READ_MAX_BYTES[service.typeName];
    router.service(service, implementation, readMaxBytes ? { readMaxBytes, ...options } : options);
    return limited;
  };
  limited.rpc = (method, implementation, options) => {
    const readMaxBytes = SERVICE_READ_MAX_BYTES[method.parent.typeName];
    router.rpc(method, implementation, readMaxBytes ? { readMaxBytes, ...options } : options);
    return limited;
  };
  return limited;
}

/**
 * Applies the request limits to the services each module registers. Modules are
 * changed in place (their routes function is wrapped) so that they keep their identity.
 */
export function withRequestLimits(modules: StudioModule[]): StudioModule[] {
  for (const m of modules) {
    const routes = m.routes?.bind(m);
    if (routes) m.routes = (router: ConnectRouter) => routes(limitRouter(router));
  }
  return modules;
}
