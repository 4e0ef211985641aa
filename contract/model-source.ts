import { z } from "zod";
import { create } from "@bufbuild/protobuf";
import type { DescEnum } from "@bufbuild/protobuf";
import {
  ModelCliDefaultsSchema,
  ModelEngineSchema,
  ModelFileRoleSchema,
  ModelFileSchema,
  ModelSourceSchema,
  type ModelCliDefaults,
  type ModelSource,
} from "../gen/studio/v1/model_pb.js";
import {
  ENGINE_NAMES,
  ROLE_NAMES,
  SAMPLING_METHODS,
  engineFromName,
  engineName,
  roleFromName,
  roleName,
} from "./names.js";
import { httpUrlProblem, withoutCredentials } from "./http-url.js";
import { describeValue, issuesFromZod, type ValidationIssue } from "./issues.js";

/** Bounds that keep one source (and one stored row) small. */
export const SOURCE_LIMITS = {
  maxFiles: 32,
  maxUrlLength: 4096,
  maxFilenameBytes: 255,
  maxSteps: 1000,
  maxSide: 8192,
  maxCfgScale: 100,
  /** A LoRA's weight, on the source or in a prompt tag: sd-cli takes any float; past this it is noise. */
  maxLoraWeight: 10,
} as const;

const utf8 = new TextEncoder();

/** Why a file name from the network cannot be used as one, or undefined when it is a bare name. */
export function filenameProblem(name: string): string | undefined {
  if (name.length === 0) return "must not be empty";
  if (utf8.encode(name).length > SOURCE_LIMITS.maxFilenameBytes)
    return `must be at most ${SOURCE_LIMITS.maxFilenameBytes} bytes`;
  if (name.includes("/") || name.includes("\\")) return "must be a bare file name, without / or \\";
  if (name === "." || name === ".." || name.includes("..")) return "must not contain ..";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return "must not contain NUL or control characters";
  return undefined;
}

/** Why a URL cannot be fetched by a worker, or undefined when it is an http(s) URL. */
export function urlProblem(url: string): string | undefined {
  if (url.length > SOURCE_LIMITS.maxUrlLength) return `must be at most ${SOURCE_LIMITS.maxUrlLength} characters`;
  return httpUrlProblem(url);
}

function refineWith(problem: (v: string) => string | undefined, quoted: (v: string) => string = (v) => v) {
  return (value: string, ctx: z.RefinementCtx) => {
    const why = problem(value);
    if (why) ctx.addIssue({ code: "custom", message: `${why} (got ${describeValue(quoted(value))})` });
  };
}

const side = z
  .number()
  .int()
  .positive()
  .max(SOURCE_LIMITS.maxSide)
  .refine((v) => v % 8 === 0, { message: "must be a multiple of 8" });

/** The wire JSON of ModelCliDefaults; also the shape of a task's overrides. */
export const CliDefaultsJsonSchema = z.strictObject({
  cfgScale: z.number().finite().min(0).max(SOURCE_LIMITS.maxCfgScale).optional(),
  steps: z.number().int().positive().max(SOURCE_LIMITS.maxSteps).optional(),
  width: side.optional(),
  height: side.optional(),
  samplingMethod: z.enum(SAMPLING_METHODS).optional(),
});
export type CliDefaultsJson = z.infer<typeof CliDefaultsJsonSchema>;

/** The wire JSON of one ModelFile. */
export const ModelFileJsonSchema = z.strictObject({
  role: z.enum(ROLE_NAMES),
  url: z.string().superRefine(refineWith(urlProblem, withoutCredentials)),
  filename: z.string().superRefine(refineWith(filenameProblem)),
  approxBytes: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, { message: "must be 64 hex digits" })
    .transform((v) => v.toLowerCase())
    .optional(),
  loraWeight: z.number().finite().min(-SOURCE_LIMITS.maxLoraWeight).max(SOURCE_LIMITS.maxLoraWeight).optional(),
});
export type ModelFileJson = z.infer<typeof ModelFileJsonSchema>;

/** The ModelSource wire JSON of the design note, with every registry rule. */
export const ModelSourceJsonSchema = z
  .strictObject({
    engine: z.enum(ENGINE_NAMES),
    files: z.array(ModelFileJsonSchema).max(SOURCE_LIMITS.maxFiles),
    cliDefaults: CliDefaultsJsonSchema.default({}),
    vramBytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .superRefine((source, ctx) => {
    const seen = new Map<string, number>();
    source.files.forEach((file, i) => {
      const first = seen.get(file.filename);
      if (first !== undefined)
        ctx.addIssue({
          code: "custom",
          path: ["files", i, "filename"],
          message: `duplicates files[${first}].filename (got ${describeValue(file.filename)})`,
        });
      else seen.set(file.filename, i);
    });
    const count = (role: string) => source.files.filter((f) => f.role === role).length;
    source.files.forEach((file, i) => {
      if (file.loraWeight !== undefined && file.role !== "lora")
        ctx.addIssue({ code: "custom", path: ["files", i, "loraWeight"], message: `is for lora files only (this file is ${file.role})` });
      if (file.role === "lora" && /[:>]/.test(file.filename))
        ctx.addIssue({
          code: "custom",
          path: ["files", i, "filename"],
          message: `a lora file name must not contain : or > (sd-cli's <lora:NAME:WEIGHT> tag cannot name it; got ${describeValue(file.filename)})`,
        });
    });
    if (source.engine === "sd-cpp") {
      if (count("model") + count("diffusion-model") === 0)
        ctx.addIssue({ code: "custom", path: ["files"], message: "sd-cpp needs a model or a diffusion-model file" });
      // sd-cli takes each file flag once (a second one silently wins), so each role but lora appears at most once.
      for (const role of new Set(source.files.map((f) => f.role)))
        if (role !== "lora" && count(role) > 1)
          ctx.addIssue({ code: "custom", path: ["files"], message: `sd-cpp takes at most one ${role} file (got ${count(role)})` });
      if (count("high-noise-diffusion-model") > 0 && count("diffusion-model") === 0)
        ctx.addIssue({ code: "custom", path: ["files"], message: "a high-noise-diffusion-model needs its diffusion-model (the low-noise expert) too" });
    }
    if (source.engine === "llama-cpp") {
      if (count("model") !== 1)
        ctx.addIssue({
          code: "custom",
          path: ["files"],
          message: `llama-cpp needs exactly one model file (got ${count("model")})`,
        });
      source.files.forEach((file, i) => {
        if (file.role !== "model")
          ctx.addIssue({ code: "custom", path: ["files", i, "role"], message: `llama-cpp takes model files only (got ${file.role})` });
      });
    }
    if (source.engine === "synthetic" && source.files.length > 0)
      ctx.addIssue({
        code: "custom",
        path: ["files"],
        message: `synthetic takes no files (got ${source.files.length})`,
      });
    if (source.engine === "synthetic" && source.vramBytes !== undefined)
      ctx.addIssue({ code: "custom", path: ["vramBytes"], message: "synthetic runs on no GPU: leave vramBytes out" });
  });
export type ModelSourceJson = z.output<typeof ModelSourceJsonSchema>;

/** Raised when a model source breaks a registry rule; `issues` names each field and value. */
export class InvalidModelSourceError extends Error {
  readonly code = "invalid_model_source";
  constructor(readonly issues: ValidationIssue[]) {
    super(issues.map((i) => `${i.path}: ${i.message}`).join("; "));
    this.name = "InvalidModelSourceError";
  }
}

/** Validates wire JSON (already parsed from text) and returns the normalised form or the issues. */
export function checkModelSourceJson(
  value: unknown,
  pathPrefix = "",
): { ok: true; value: ModelSourceJson } | { ok: false; issues: ValidationIssue[] } {
  const result = ModelSourceJsonSchema.safeParse(value, { reportInput: true });
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, issues: issuesFromZod(result.error, pathPrefix) };
}

/** Why stored text is not a valid source (the validation errors, one line), or undefined when it is one. */
export function modelSourceProblem(text: string | null | undefined): string | undefined {
  if (typeof text !== "string" || text.trim() === "") return "no source is stored";
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return `not valid JSON: ${(err as Error).message}`;
  }
  const checked = checkModelSourceJson(raw);
  return checked.ok ? undefined : checked.issues.map((i) => `${i.path}: ${i.message}`).join("; ");
}

/** Most distinct stored source texts remembered (about one per model version in use). */
const MAX_STORED_SOURCES = 1024;
/**
 * What each stored source text parses to (null: it does not), with the one message built from it.
 * Every job of a model version stores the same text as its registry row, and the zod check was a
 * large part of each job read and each resolve: a text is parsed once for all of them. A memo of a
 * pure function: the validated JSON is never handed out.
 */
const storedSources = new Map<string, { json: ModelSourceJson; shared: ModelSource } | null>();

function storedSource(text: string | null | undefined): { json: ModelSourceJson; shared: ModelSource } | null {
  if (typeof text !== "string") return null;
  let known = storedSources.get(text);
  if (known === undefined) {
    known = null;
    if (text.trim() !== "") {
      try {
        const checked = checkModelSourceJson(JSON.parse(text));
        if (checked.ok) known = { json: checked.value, shared: modelSourceFromJson(checked.value) };
      } catch {
        // Malformed text reads back with no source.
      }
    }
    if (storedSources.size >= MAX_STORED_SOURCES) storedSources.clear();
    storedSources.set(text, known);
  }
  return known;
}

/**
 * Reads a stored `modelSource` column (a job's or a registry row's) into a message of the caller's
 * own. Returns undefined, never throws, for NULL, empty, legacy or malformed text: a reader must
 * treat those rows as having no source.
 */
export function parseModelSourceJson(text: string | null | undefined): ModelSource | undefined {
  const known = storedSource(text);
  return known ? modelSourceFromJson(known.json) : undefined;
}

/**
 * As parseModelSourceJson, but the one message every read of that text shares: only for messages
 * that are read or serialised and never changed (an Offer or a Job on its way out, a resolved model).
 */
export function sharedModelSourceFromStored(text: string | null | undefined): ModelSource | undefined {
  return storedSource(text)?.shared;
}

/** The proto message for validated wire JSON. */
export function modelSourceFromJson(json: ModelSourceJson): ModelSource {
  return create(ModelSourceSchema, {
    engine: engineFromName(json.engine),
    files: json.files.map((f) =>
      create(ModelFileSchema, {
        role: roleFromName(f.role),
        url: f.url,
        filename: f.filename,
        approxBytes: f.approxBytes === undefined ? undefined : BigInt(f.approxBytes),
        sha256: f.sha256,
        loraWeight: f.loraWeight,
      }),
    ),
    cliDefaults: cliDefaultsFromJson(json.cliDefaults),
    vramBytes: json.vramBytes === undefined ? undefined : BigInt(json.vramBytes),
  });
}

/** The proto message for cli defaults (or task overrides) in wire JSON. */
export function cliDefaultsFromJson(json: CliDefaultsJson): ModelCliDefaults {
  return create(ModelCliDefaultsSchema, { ...json });
}

/** The wire JSON of cli defaults; unset fields are left out. */
export function cliDefaultsToJson(d: ModelCliDefaults | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!d) return out;
  if (d.cfgScale !== undefined) out.cfgScale = d.cfgScale;
  if (d.steps !== undefined) out.steps = d.steps;
  if (d.width !== undefined) out.width = d.width;
  if (d.height !== undefined) out.height = d.height;
  if (d.samplingMethod !== undefined) out.samplingMethod = d.samplingMethod;
  return out;
}

/** Every broken rule of cli defaults (or a task's overrides), with the same rules as the registry. */
export function checkCliDefaults(defaults: ModelCliDefaults, prefix: string): ValidationIssue[] {
  const result = CliDefaultsJsonSchema.safeParse(cliDefaultsToJson(defaults), { reportInput: true });
  return result.success ? [] : issuesFromZod(result.error, prefix);
}

/**
 * The wire JSON of a proto source, before validation: enum values this build
 * does not know come out as "unspecified(N)" so that validation names them.
 */
export function modelSourceToJsonValue(source: ModelSource): Record<string, unknown> {
  return {
    engine: engineName(source.engine) ?? `unspecified(${source.engine})`,
    files: source.files.map((f) => {
      const file: Record<string, unknown> = {
        role: roleName(f.role) ?? `unspecified(${f.role})`,
        url: f.url,
        filename: f.filename,
      };
      if (f.approxBytes !== undefined) file.approxBytes = safeNumber(f.approxBytes);
      if (f.sha256 !== undefined) file.sha256 = f.sha256;
      if (f.loraWeight !== undefined) file.loraWeight = f.loraWeight;
      return file;
    }),
    cliDefaults: cliDefaultsToJson(source.cliDefaults),
    ...(source.vramBytes === undefined ? {} : { vramBytes: safeNumber(source.vramBytes) }),
  };
}

function safeNumber(v: bigint): number {
  // Past 2^53 a byte count is nonsense anyway; keep it out of range so validation rejects it.
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER + 1 : Number(v);
}

/** Validates a proto source against every registry rule and returns it normalised (sha256 lower case). */
export function validateModelSource(source: ModelSource | undefined, pathPrefix = "source"): ModelSource {
  if (!source) throw new InvalidModelSourceError([{ path: pathPrefix, message: "is required" }]);
  const checked = checkModelSourceJson(modelSourceToJsonValue(source), pathPrefix);
  if (!checked.ok) throw new InvalidModelSourceError(checked.issues.map((issue) => protoEnumIssue(issue, source, pathPrefix)));
  return modelSourceFromJson(checked.value);
}

/**
 * A proto caller sends enum values, not the wire names the JSON rules list: an engine or role this
 * build does not know is described with the proto names to send (and the wire names they stand for).
 */
function protoEnumIssue(issue: ValidationIssue, source: ModelSource, prefix: string): ValidationIssue {
  if (issue.path === `${prefix}.engine` && engineName(source.engine) === undefined) {
    const accepted = ENGINE_NAMES.map((n) => `${protoName(ModelEngineSchema, engineFromName(n))} ("${n}")`).join(", ");
    return { path: issue.path, message: `must be one of ${accepted}; got ${protoName(ModelEngineSchema, source.engine)}` };
  }
  const index = issue.path.startsWith(`${prefix}.files[`) ? /^\.files\[(\d+)\]\.role$/.exec(issue.path.slice(prefix.length)) : null;
  const file = index ? source.files[Number(index[1])] : undefined;
  if (file && roleName(file.role) === undefined) {
    const accepted = ROLE_NAMES.map((n) => `${protoName(ModelFileRoleSchema, roleFromName(n))} ("${n}")`).join(", ");
    return { path: issue.path, message: `must be one of ${accepted}; got ${protoName(ModelFileRoleSchema, file.role)}` };
  }
  return issue;
}

function protoName(e: DescEnum, n: number): string {
  return e.value[n]?.name ?? String(n);
}

/** The stored text of a valid source: the design note's wire JSON. */
export function modelSourceToJsonText(source: ModelSource): string {
  const checked = checkModelSourceJson(modelSourceToJsonValue(source));
  if (!checked.ok) throw new InvalidModelSourceError(checked.issues);
  return JSON.stringify(checked.value);
}
