import { PUBLIC_RPCS, rolesFor } from "./access-policy.js";
import type { Role } from "./caller.js";

/** RPCs whose open streams count against a token's stream limit. */
export const LIMITED_STREAMS: ReadonlySet<string> = new Set([
  "studio.v1.JobService/WatchJobs",
  "studio.v1.JobService/CreateJobs",
  "studio.v1.WorkerService/WatchWorkers",
]);

/** The access policy of one method: its "service/method" name, whether it is public, who may call it, whether its streams count. */
export interface MethodPolicy {
  rpc: string;
  public: boolean;
  roles: readonly Role[];
  limited: boolean;
}

/** What a call says about its method: connect's HandlerContext and interceptor requests both carry these. */
interface MethodRef {
  service: { typeName: string };
  method: { name: string };
}

/** A method's policy, worked out once per method (it depends on the method only) and then looked up. */
export function methodPolicies(): (call: MethodRef) => MethodPolicy {
  const policies = new WeakMap<object, MethodPolicy>();
  return (call) => {
    let policy = policies.get(call.method);
    if (!policy) {
      const rpc = `${call.service.typeName}/${call.method.name}`;
      policy = { rpc, public: PUBLIC_RPCS.has(rpc), roles: rolesFor(call.service.typeName, call.method.name), limited: LIMITED_STREAMS.has(rpc) };
      policies.set(call.method, policy);
    }
    return policy;
  };
}
