import {
  create,
  createFileRegistry,
  createRegistry,
  toBinary,
  type DescFile,
  type DescMessage,
  type DescService,
  type Registry,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FieldDescriptorProto_Label, FieldDescriptorProto_Type } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";

/**
 * gRPC server reflection (grpc.reflection.v1 and the older v1alpha that many tools still ask
 * first), so that `buf curl --list-services`, grpcurl and Postman can call the studio without the
 * proto files. Both services are described in code, as grpc.health.v1 is: their messages are
 * fixed by the gRPC project, and this keeps them out of the studio.v1 contract.
 *
 * What it describes is what the router serves: every service with a registered handler, with
 * each file's transitive imports, so a client can build any request and read any response.
 */

const { STRING, INT32, BYTES, MESSAGE } = FieldDescriptorProto_Type;
const { OPTIONAL, REPEATED } = FieldDescriptorProto_Label;

/** The reflection.proto of one package (grpc.reflection.v1 or grpc.reflection.v1alpha): the two are the same but for the name. */
function reflectionFile(pkg: string): DescFile {
  const t = (name: string) => `.${pkg}.${name}`;
  const field = (name: string, number: number, type: FieldDescriptorProto_Type, extra: Record<string, unknown> = {}) => ({
    name,
    number,
    type,
    label: OPTIONAL,
    jsonName: name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
    ...extra,
  });
  const inOneof = { oneofIndex: 0 };
  const proto = create(FileDescriptorProtoSchema, {
    name: `grpc/reflection/${pkg.split(".").at(-1)}/reflection.proto`,
    package: pkg,
    syntax: "proto3",
    messageType: [
      {
        name: "ServerReflectionRequest",
        field: [
          field("host", 1, STRING),
          field("file_by_filename", 3, STRING, inOneof),
          field("file_containing_symbol", 4, STRING, inOneof),
          field("file_containing_extension", 5, MESSAGE, { ...inOneof, typeName: t("ExtensionRequest") }),
          field("all_extension_numbers_of_type", 6, STRING, inOneof),
          field("list_services", 7, STRING, inOneof),
        ],
        oneofDecl: [{ name: "message_request" }],
      },
      { name: "ExtensionRequest", field: [field("containing_type", 1, STRING), field("extension_number", 2, INT32)] },
      {
        name: "ServerReflectionResponse",
        field: [
          field("valid_host", 1, STRING),
          field("original_request", 2, MESSAGE, { typeName: t("ServerReflectionRequest") }),
          field("file_descriptor_response", 4, MESSAGE, { ...inOneof, typeName: t("FileDescriptorResponse") }),
          field("all_extension_numbers_response", 5, MESSAGE, { ...inOneof, typeName: t("ExtensionNumberResponse") }),
          field("list_services_response", 6, MESSAGE, { ...inOneof, typeName: t("ListServiceResponse") }),
          field("error_response", 7, MESSAGE, { ...inOneof, typeName: t("ErrorResponse") }),
        ],
        oneofDecl: [{ name: "message_response" }],
      },
      { name: "FileDescriptorResponse", field: [field("file_descriptor_proto", 1, BYTES, { label: REPEATED })] },
      {
        name: "ExtensionNumberResponse",
        field: [field("base_type_name", 1, STRING), field("extension_number", 2, INT32, { label: REPEATED })],
      },
      { name: "ListServiceResponse", field: [field("service", 1, MESSAGE, { label: REPEATED, typeName: t("ServiceResponse") })] },
      { name: "ServiceResponse", field: [field("name", 1, STRING)] },
      { name: "ErrorResponse", field: [field("error_code", 1, INT32), field("error_message", 2, STRING)] },
    ],
    service: [
      {
        name: "ServerReflection",
        method: [
          {
            name: "ServerReflectionInfo",
            inputType: t("ServerReflectionRequest"),
            outputType: t("ServerReflectionResponse"),
            clientStreaming: true,
            serverStreaming: true,
          },
        ],
      },
    ],
  });
  return createFileRegistry(proto, () => undefined).getFile(proto.name) as DescFile;
}

/** grpc.reflection.v1.ServerReflection and grpc.reflection.v1alpha.ServerReflection. */
export const ReflectionServices: readonly DescService[] = ["grpc.reflection.v1", "grpc.reflection.v1alpha"].map(
  (pkg) => reflectionFile(pkg).services[0]!,
);

/** The most requests one reflection stream may make: a client describing the whole studio needs a few dozen. */
export const MAX_REFLECTION_REQUESTS_PER_STREAM = 1000;

type ReflectionRequest = {
  host: string;
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
};
type ReflectionResponse = { validHost: string; originalRequest: ReflectionRequest; messageResponse: { case: string; value: unknown } };

/** What reflection answers from: the served services, their files with every import, and the types in them. */
interface Catalog {
  services: string[];
  files: Map<string, DescFile>;
  types: Registry;
}

function catalogOf(services: Iterable<DescService>): Catalog {
  const names = new Set<string>();
  const files = new Map<string, DescFile>();
  const add = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const dep of file.dependencies) add(dep);
  };
  for (const service of services) {
    names.add(service.typeName);
    add(service.file);
  }
  return { services: [...names].sort(), files, types: createRegistry(...files.values()) };
}

/** A file and its transitive imports, each serialized once, the asked-for file first (as grpc-go answers). */
function withImports(file: DescFile): Uint8Array[] {
  const seen = new Set<string>();
  const out: Uint8Array[] = [];
  const walk = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    for (const dep of f.dependencies) walk(dep);
  };
  walk(file);
  return out;
}

/** The file that defines a fully-qualified symbol: a service, a method (Service.Method), a message, an enum or an extension. */
function fileOfSymbol(catalog: Catalog, symbol: string): DescFile | undefined {
  const name = symbol.replace(/^\./, "");
  const found = catalog.types.get(name);
  if (found) return found.file;
  const dot = name.lastIndexOf(".");
  const parent = dot > 0 ? catalog.types.get(name.slice(0, dot)) : undefined;
  if (parent?.kind === "service" && parent.methods.some((m) => m.name === name.slice(dot + 1))) return parent.file;
  return undefined;
}

/** One answer of the protocol: the files, the service list, or an error_response (never an RPC error: the stream goes on). */
function answer(catalog: Catalog, req: ReflectionRequest): ReflectionResponse["messageResponse"] {
  const notFound = (what: string) => ({
    case: "errorResponse",
    value: { errorCode: Code.NotFound, errorMessage: `${what} is not served here` },
  });
  const files = (file: DescFile | undefined, what: string) =>
    file ? { case: "fileDescriptorResponse", value: { fileDescriptorProto: withImports(file) } } : notFound(what);
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      return { case: "listServicesResponse", value: { service: catalog.services.map((name) => ({ name })) } };
    case "fileByFilename":
      return files(catalog.files.get(r.value), `file ${JSON.stringify(r.value)}`);
    case "fileContainingSymbol":
      return files(fileOfSymbol(catalog, r.value), `symbol ${JSON.stringify(r.value)}`);
    case "fileContainingExtension":
      // The studio's contract defines no extensions.
      return notFound(`extension ${r.value.extensionNumber} of ${JSON.stringify(r.value.containingType)}`);
    case "allExtensionNumbersOfType": {
      const type = catalog.types.get(r.value.replace(/^\./, ""));
      return type?.kind === "message"
        ? { case: "allExtensionNumbersResponse", value: { baseTypeName: type.typeName, extensionNumber: [] } }
        : notFound(`message type ${JSON.stringify(r.value)}`);
    }
    default:
      return { case: "errorResponse", value: { errorCode: Code.InvalidArgument, errorMessage: "the request names no question" } };
  }
}

/**
 * Registers both reflection services on the router. The catalog is read from the router's
 * handlers on the first request, when every module has registered its routes.
 */
export function grpcReflectionRoutes() {
  return (router: ConnectRouter) => {
    let catalog: Catalog | undefined;
    const catalogNow = () => (catalog ??= catalogOf(new Set(router.handlers.map((h) => h.service))));
    const impl = {
      async *serverReflectionInfo(requests: AsyncIterable<ReflectionRequest>) {
        let count = 0;
        for await (const req of requests) {
          if (++count > MAX_REFLECTION_REQUESTS_PER_STREAM) return;
          yield { validHost: req.host, originalRequest: req, messageResponse: answer(catalogNow(), req) };
        }
      },
    };
    for (const service of ReflectionServices) router.service(service, impl as never);
  };
}

/** The reflection request and response message descriptors of one package (tests build requests with them). */
export function reflectionMessages(service: DescService): { request: DescMessage; response: DescMessage } {
  const method = service.methods[0]!;
  return { request: method.input, response: method.output };
}
