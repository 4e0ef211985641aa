import type { Role } from "./caller.js";

const ADMIN: readonly Role[] = ["admin"];
const CLIENT: readonly Role[] = ["admin", "client"];
const WORKER: readonly Role[] = ["admin", "worker"];
const ANY: readonly Role[] = ["admin", "client", "worker"];

/**
 * Who may call what, one row per RPC. Admin may call everything; clients run jobs
 * and read the registry and the worker list; workers use WorkerService only.
 * An RPC missing here is admin-only (deny by default), and test/auth checks
 * that every RPC of every studio service has a row.
 *
 * | service          | admin | client                         | worker                        |
 * | ---------------- | ----- | ------------------------------ | ----------------------------- |
 * | TokenService     | all   | WhoAmI                         | WhoAmI                        |
 * | RegistryService  | all   | ListModels, GetModel           | -                             |
 * | JobService       | all   | all                            | -                             |
 * | WorkerService    | all   | ListWorkers, WatchWorkers      | all but those two             |
 */
export const RPC_ROLES: Readonly<Record<string, Readonly<Record<string, readonly Role[]>>>> = {
  "studio.v1.TokenService": { CreateToken: ADMIN, ListTokens: ADMIN, RevokeToken: ADMIN, WhoAmI: ANY },
  "studio.v1.RegistryService": {
    ListModels: CLIENT,
    GetModel: CLIENT,
    CreateModel: ADMIN,
    UpdateModel: ADMIN,
    DeleteModel: ADMIN,
    SetModelEnabled: ADMIN,
    VerifyModel: ADMIN,
  },
  "studio.v1.JobService": {
    CreateJob: CLIENT,
    CreateJobs: CLIENT,
    PromoteJob: CLIENT,
    RetryJob: CLIENT,
    CancelJob: CLIENT,
    GetJob: CLIENT,
    ListJobs: CLIENT,
    WatchJobs: CLIENT,
    GetJobOutput: CLIENT,
  },
  "studio.v1.WorkerService": {
    Session: WORKER,
    ClaimJob: WORKER,
    Heartbeat: WORKER,
    ReportProgress: WORKER,
    CompleteJob: WORKER,
    CompleteJobStream: WORKER,
    FailJob: WORKER,
    ListWorkers: CLIENT,
    WatchWorkers: CLIENT,
  },
};

/**
 * RPCs anyone may call without a token: the standard gRPC health service, which
 * probes call without credentials and which says nothing but "serving" or not, and
 * server reflection, which describes the contract that proto/ already publishes (so that
 * grpcurl, `buf curl` and Postman can list and describe the services before a token is
 * at hand; every call they then make is checked as usual).
 */
export const PUBLIC_RPCS: ReadonlySet<string> = new Set([
  "grpc.health.v1.Health/Check",
  "grpc.health.v1.Health/Watch",
  "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
  "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
]);

/** The roles that may call service/method (typeName and method name as in the descriptors). */
export function rolesFor(serviceTypeName: string, methodName: string): readonly Role[] {
  return RPC_ROLES[serviceTypeName]?.[methodName] ?? ADMIN;
}

/** Plain HTTP routes that need a token when auth is on (output downloads): jobs readers. */
export const HTTP_READER_ROLES = CLIENT;
