import type { DescEnum, DescField, DescMessage, DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { ModelEngineSchema, ModelFileRoleSchema } from "../../gen/studio/v1/model_pb.js";
import { ENGINE_NAMES, ROLE_NAMES, engineFromName, roleFromName } from "../../contract/names.js";

/**
 * Enum names over JSON. connect-es parses JSON with ignoreUnknownFields (unknown keys are skipped,
 * which keeps older studios talking to newer clients), and that option also drops an enum name it
 * does not know: a ListJobs filter naming an unknown status would list every job, a CreateModel with
 * `"engine": "sd-cpp"` would read as UNSPECIFIED. So each method's JSON input is read here first:
 * an unknown enum name is refused with INVALID_ARGUMENT naming the field and the accepted names, and
 * the ModelSource wire names of the design note (`sd-cpp`, `diffusion-model`, ...) are accepted as
 * aliases of their proto names. Numbers stay as proto3 JSON has them.
 */

/** Alias → proto value name, per enum type name. */
export type EnumAliases = ReadonlyMap<string, ReadonlyMap<string, string>>;

/** The ModelSource wire names (contract/names.ts) as aliases of the proto enum names. */
export const WIRE_NAME_ALIASES: EnumAliases = new Map<string, ReadonlyMap<string, string>>([
  [ModelEngineSchema.typeName, new Map(ENGINE_NAMES.map((n) => [n, valueName(ModelEngineSchema, engineFromName(n))]))],
  [ModelFileRoleSchema.typeName, new Map(ROLE_NAMES.map((n) => [n, valueName(ModelFileRoleSchema, roleFromName(n))]))],
]);

function valueName(e: DescEnum, n: number): string {
  const v = e.value[n];
  if (!v) throw new RangeError(`${e.typeName} has no value ${n}`);
  return v.name;
}

/**
 * A router that registers every method on its own, with JSON options whose text decoder checks (and
 * rewrites aliases in) that method's input before connect-es parses it. Binary input is untouched.
 */
export function checkJsonEnumNames(router: ConnectRouter, aliases: EnumAliases = WIRE_NAME_ALIASES): ConnectRouter {
  const checked: ConnectRouter = Object.create(router);
  checked.rpc = (method, implementation, options) => {
    // The handler hands jsonOptions to connect-es's createJsonSerialization, whose documented
    // options include textDecoder; the handler options' type leaves it out.
    const jsonOptions = { ...options?.jsonOptions, textDecoder: enumCheckingDecoder(method, aliases) } as NonNullable<typeof options>["jsonOptions"];
    router.rpc(method, implementation, { ...options, jsonOptions });
    return checked;
  };
  checked.service = (service, implementation, options) => {
    // As connect-es's own service registration does: bound methods, and UNIMPLEMENTED for missing ones.
    const impl = implementation as Record<string, unknown>;
    for (const method of service.methods) {
      const fn = impl[method.localName];
      const bound =
        typeof fn === "function"
          ? fn.bind(implementation)
          : () => {
              throw new ConnectError(`${service.typeName}.${method.name} is not implemented`, Code.Unimplemented);
            };
      checked.rpc(method as DescMethod & { methodKind: "unary" }, bound as never, options);
    }
    return checked;
  };
  return checked;
}

/** What connect-es calls as `textDecoder.decode` on a JSON request body of `method`. */
export function enumCheckingDecoder(method: DescMethod, aliases: EnumAliases): { decode(data: Uint8Array): string } {
  const utf8 = new TextDecoder();
  const input = method.input;
  const relevant = reachesEnum(input, new Set());
  return {
    decode(data: Uint8Array): string {
      const text = utf8.decode(data);
      if (!relevant) return text;
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        return text; // protobuf-es reports the syntax error with its position
      }
      return checkMessage(input, json, input.name, aliases) ? JSON.stringify(json) : text;
    },
  };
}

/** True when a message can hold an enum somewhere (so other methods skip the extra parse). */
function reachesEnum(desc: DescMessage, seen: Set<string>): boolean {
  if (seen.has(desc.typeName) || isWellKnown(desc)) return false;
  seen.add(desc.typeName);
  return desc.fields.some((f) => {
    switch (f.fieldKind) {
      case "enum":
        return true;
      case "message":
        return reachesEnum(f.message, seen);
      case "list":
        return f.listKind === "enum" || (f.listKind === "message" && reachesEnum(f.message, seen));
      case "map":
        return f.mapKind === "enum" || (f.mapKind === "message" && reachesEnum(f.message, seen));
      default:
        return false;
    }
  });
}

/** Well-known types have their own JSON forms (Timestamp as a string, Struct as any JSON...). */
function isWellKnown(desc: DescMessage): boolean {
  return desc.typeName.startsWith("google.protobuf.");
}

/** Checks the enum values in one JSON object of `desc`; returns true when an alias was rewritten. */
function checkMessage(desc: DescMessage, json: unknown, path: string, aliases: EnumAliases): boolean {
  if (json === null || typeof json !== "object" || Array.isArray(json) || isWellKnown(desc)) return false;
  const obj = json as Record<string, unknown>;
  let changed = false;
  for (const key of Object.keys(obj)) {
    const field = fieldFor(desc, key);
    const value = obj[key];
    if (!field || value === null) continue;
    const at = `${path}.${field.name}`;
    switch (field.fieldKind) {
      case "enum":
        changed = checkEnum(field.enum, obj, key, at, aliases) || changed;
        break;
      case "message":
        changed = checkMessage(field.message, value, at, aliases) || changed;
        break;
      case "list":
        if (!Array.isArray(value)) break;
        value.forEach((_, i) => {
          if (field.listKind === "enum") changed = checkEnum(field.enum, value as unknown[], i, `${at}[${i}]`, aliases) || changed;
          else if (field.listKind === "message") changed = checkMessage(field.message, value[i], `${at}[${i}]`, aliases) || changed;
        });
        break;
      case "map":
        if (value === null || typeof value !== "object" || Array.isArray(value)) break;
        for (const k of Object.keys(value)) {
          const entries = value as Record<string, unknown>;
          if (field.mapKind === "enum") changed = checkEnum(field.enum, entries, k, `${at}[${JSON.stringify(k)}]`, aliases) || changed;
          else if (field.mapKind === "message") changed = checkMessage(field.message, entries[k], `${at}[${JSON.stringify(k)}]`, aliases) || changed;
        }
        break;
    }
  }
  return changed;
}

const fieldsByKey = new WeakMap<DescMessage, Map<string, DescField>>();

/** The field a JSON key names: its JSON name or its proto name, as proto3 JSON parsers accept. */
function fieldFor(desc: DescMessage, key: string): DescField | undefined {
  let byKey = fieldsByKey.get(desc);
  if (!byKey) {
    byKey = new Map();
    for (const f of desc.fields) {
      byKey.set(f.name, f);
      byKey.set(f.jsonName, f);
    }
    fieldsByKey.set(desc, byKey);
  }
  return byKey.get(key);
}

/** One enum value in `holder[key]`: a known name or a number passes, an alias is rewritten, anything else is refused. */
function checkEnum(e: DescEnum, holder: Record<string, unknown> | unknown[], key: string | number, path: string, aliases: EnumAliases): boolean {
  const slots = holder as Record<string | number, unknown>;
  const value = slots[key];
  if (typeof value !== "string") return false; // numbers are proto3 JSON; other types get protobuf-es's own error
  if (e.values.some((v) => v.name === value)) return false;
  const alias = aliases.get(e.typeName)?.get(value);
  if (alias) {
    slots[key] = alias;
    return true;
  }
  throw new ConnectError(`${path}: unknown ${e.name} ${JSON.stringify(value)}; accepted: ${acceptedNames(e, aliases)}`, Code.InvalidArgument);
}

function acceptedNames(e: DescEnum, aliases: EnumAliases): string {
  const byProto = new Map<string, string>();
  for (const [alias, proto] of aliases.get(e.typeName) ?? []) byProto.set(proto, alias);
  return e.values
    .filter((v) => v.number !== 0)
    .map((v) => (byProto.has(v.name) ? `${v.name} (or "${byProto.get(v.name)}")` : v.name))
    .join(", ");
}
