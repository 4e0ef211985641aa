import { create, createFileRegistry, type DescMessage, type DescService, type MessageShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FieldDescriptorProto_Label, FieldDescriptorProto_Type } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";

/**
 * The standard gRPC health service (grpc.health.v1.Health, as grpc_health_probe and
 * Kubernetes' grpc probes call it), described in code: its three messages are fixed by
 * the gRPC project, and building the descriptor here keeps it out of our studio.v1 contract.
 */
const file = create(FileDescriptorProtoSchema, {
  name: "grpc/health/v1/health.proto",
  package: "grpc.health.v1",
  syntax: "proto3",
  messageType: [
    {
      name: "HealthCheckRequest",
      field: [{ name: "service", number: 1, type: FieldDescriptorProto_Type.STRING, label: FieldDescriptorProto_Label.OPTIONAL, jsonName: "service" }],
    },
    {
      name: "HealthCheckResponse",
      field: [
        {
          name: "status",
          number: 1,
          type: FieldDescriptorProto_Type.ENUM,
          label: FieldDescriptorProto_Label.OPTIONAL,
          typeName: ".grpc.health.v1.HealthCheckResponse.ServingStatus",
          jsonName: "status",
        },
      ],
      enumType: [
        {
          name: "ServingStatus",
          value: [
            { name: "UNKNOWN", number: 0 },
            { name: "SERVING", number: 1 },
            { name: "NOT_SERVING", number: 2 },
            { name: "SERVICE_UNKNOWN", number: 3 },
          ],
        },
      ],
    },
  ],
  service: [
    {
      name: "Health",
      method: [
        { name: "Check", inputType: ".grpc.health.v1.HealthCheckRequest", outputType: ".grpc.health.v1.HealthCheckResponse" },
        { name: "Watch", inputType: ".grpc.health.v1.HealthCheckRequest", outputType: ".grpc.health.v1.HealthCheckResponse", serverStreaming: true },
      ],
    },
  ],
});
const registry = createFileRegistry(file, () => undefined);

/** grpc.health.v1.Health. */
export const HealthService = registry.getService("grpc.health.v1.Health") as DescService;
const ResponseSchema = registry.getMessage("grpc.health.v1.HealthCheckResponse") as DescMessage;

/** ServingStatus values. */
export const SERVING = 1;
export const NOT_SERVING = 2;

type HealthRequest = { service: string };

/**
 * Registers Health: Check answers SERVING while the studio is ready (database
 * writable, migrations applied) and NOT_SERVING otherwise, for "" (the server) and
 * each studio service; Watch sends the status now and again whenever it changes.
 */
export function grpcHealthRoutes(ready: () => Promise<boolean>, services: readonly string[], { watchIntervalMs = 5000 } = {}) {
  const known = new Set(["", ...services]);
  const status = async (req: HealthRequest): Promise<MessageShape<DescMessage>> => {
    if (!known.has(req.service)) throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
    return create(ResponseSchema, { status: (await ready()) ? SERVING : NOT_SERVING } as never);
  };
  return (router: ConnectRouter) =>
    router.service(HealthService, {
      check: (req: HealthRequest) => status(req),
      async *watch(req: HealthRequest, ctx: HandlerContext) {
        let last: number | undefined;
        while (!ctx.signal.aborted) {
          const now = (await status(req)) as unknown as { status: number };
          if (now.status !== last) {
            last = now.status;
            yield now as never;
          }
          await new Promise<void>((resolve) => {
            const timer = setTimeout(done, watchIntervalMs);
            ctx.signal.addEventListener("abort", done, { once: true });
            function done() {
              clearTimeout(timer);
              ctx.signal.removeEventListener("abort", done);
              resolve();
            }
          });
        }
      },
    } as never);
}
