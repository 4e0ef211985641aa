import { parseByteSize } from "../contract/byte-size.js";
import { httpUrlProblem } from "../contract/http-url.js";
import { z } from "zod";
import { homedir, hostname } from "node:os";
import { join } from "node:path";
import { ENGINE_NAMES, type EngineName } from "../contract/names.js";
import { WORKER_SECRETS } from "./engines/engine-env.js";
import { parseGpuChoice, parseIndexList } from "./gpus/gpu-plan.js";

const byteSize = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = typeof v === "number" ? v : parseByteSize(v);
  if (n === undefined || !Number.isSafeInteger(n) || n < 0) {
    ctx.addIssue({ code: "custom", message: `must be a byte size like 500M or 50G (got ${JSON.stringify(v)})` });
    return z.NEVER;
  }
  return n;
});


/** Most studio URLs one worker rotates through. */
export const MAX_SERVERS = 16;

/**
 * One or more studio URLs (--server repeated, or a comma list): replicas of one studio that
 * the worker rotates through when a session ends. Behind a load balancer one URL is enough.
 */
const serverList = z.union([z.string(), z.array(z.string())]).transform((v, ctx) => {
  const urls = [...new Set((Array.isArray(v) ? v : v.split(",")).map((s) => s.trim()).filter((s) => s !== ""))];
  if (urls.length === 0 || urls.length > MAX_SERVERS) {
    ctx.addIssue({ code: "custom", message: `must name 1 to ${MAX_SERVERS} studio URLs (got ${urls.length})` });
    return z.NEVER;
  }
  for (const url of urls) {
    const problem = httpUrlProblem(url);
    if (problem) {
      ctx.addIssue({ code: "custom", message: `${problem} (got ${JSON.stringify(url)}); a token goes in --token` });
      return z.NEVER;
    }
  }
  return urls;
});

const engineList = z.union([z.string(), z.array(z.string())]).transform((v, ctx) => {
  const names = (Array.isArray(v) ? v : v.split(",")).map((s) => s.trim()).filter((s) => s !== "");
  const unknown = names.filter((n) => !(ENGINE_NAMES as readonly string[]).includes(n));
  if (unknown.length > 0) {
    ctx.addIssue({
      code: "custom",
      message: `unknown engine ${unknown.map((n) => JSON.stringify(n)).join(", ")}; choose from ${ENGINE_NAMES.join(", ")}`,
    });
    return z.NEVER;
  }
  if (names.length === 0) {
    ctx.addIssue({ code: "custom", message: "must name at least one engine" });
    return z.NEVER;
  }
  return [...new Set(names)] as EngineName[];
});

const labelList = z.string().transform((v, ctx) => {
  const labels: Record<string, string> = {};
  for (const pair of v.split(",").filter((s) => s.trim() !== "")) {
    const eq = pair.indexOf("=");
    const key = eq > 0 ? pair.slice(0, eq).trim() : "";
    if (!/^[A-Za-z0-9_.-]{1,63}$/.test(key) || pair.length > 320) {
      ctx.addIssue({ code: "custom", message: `must be key=value pairs separated by commas (got ${JSON.stringify(pair)})` });
      return z.NEVER;
    }
    labels[key] = pair.slice(eq + 1).trim();
  }
  return labels;
});

/** --engine-env: a comma list of environment variable names, never the worker's own secrets. */
const engineEnvNames = z.string().transform((v, ctx) => {
  const names = v.split(",").map((n) => n.trim()).filter((n) => n !== "");
  for (const n of names) {
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(n)) {
      ctx.addIssue({ code: "custom", message: `must be environment variable names separated by commas (got ${JSON.stringify(n.slice(0, 80))})` });
      return z.NEVER;
    }
    if (WORKER_SECRETS.has(n)) {
      ctx.addIssue({ code: "custom", message: `${n} is the worker's own secret and is never passed to engines` });
      return z.NEVER;
    }
  }
  return names;
});

const count = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const gpuChoice = z.string().transform((v, ctx) => {
  const choice = parseGpuChoice(v);
  if (typeof choice === "string") {
    ctx.addIssue({ code: "custom", message: choice });
    return z.NEVER;
  }
  return choice;
});

const slotGpuList = z.string().transform((v, ctx) => {
  const list = parseIndexList(v.trim());
  if (typeof list === "string") {
    ctx.addIssue({ code: "custom", message: `must list each slot's GPU index, like 0,0,1 (${list})` });
    return z.NEVER;
  }
  if (list.length > 64) {
    ctx.addIssue({ code: "custom", message: `maps at most 64 slots (got ${list.length})` });
    return z.NEVER;
  }
  return list;
});

/** The work dir under a cache dir, unless --work-dir says otherwise: private to the user, never the shared temp dir. */
export const WORK_SUBDIR = "work";

/**
 * Where the worker keeps things unless told otherwise: the XDG cache dir, and the work dir inside it
 * (`<cache dir>/work`, made 0700). Not the system temp dir: any local user can create entries there,
 * and crash recovery acts on the owner records it finds in the work dir.
 */
export function defaultDirs(env: Record<string, string | undefined> = {}) {
  const cacheHome = env.XDG_CACHE_HOME || join(homedir(), ".cache");
  const cacheDir = join(cacheHome, "studio-worker");
  return { cacheDir, workDir: join(cacheDir, WORK_SUBDIR) };
}

/**
 * Every setting of the worker, validated at start-up: flags win over environment variables,
 * which win over defaults. Engine programs are resolved afterwards by `resolveEngines`.
 */
export function workerConfigSchema(defaults = defaultDirs()) {
  return z.strictObject({
    server: serverList,
    token: z.string().min(1).max(4096).optional(),
    name: z.string().trim().min(1).max(128).default(hostname()),
    cacheDir: z.string().min(1).default(defaults.cacheDir),
    cacheMaxBytes: byteSize.default(100 * 1024 ** 3),
    /** Defaults to `<cache dir>/work`, following --cache-dir when only that is given. */
    workDir: z.string().min(1).optional(),
    /** Unset: one slot per GPU used, or 1 without a GPU. */
    slots: count(1, 64).optional(),
    gpus: gpuChoice.default({ kind: "all" }),
    slotGpus: slotGpuList.optional(),
    nvidiaSmi: z.string().min(1).optional(),
    rocmSmi: z.string().min(1).optional(),
    gpuPollSeconds: count(1, 3600).default(10),
    sdCli: z.string().min(1).optional(),
    llamaServer: z.string().min(1).optional(),
    engines: engineList.optional(),
    llamaIdleSeconds: count(1, 7 * 24 * 3600).default(300),
    llamaCtxSize: count(0, 10_000_000).optional(),
    llamaGpuLayers: count(-1, 100_000).optional(),
    syntheticStepMs: count(0, 60_000).default(0),
    jobTimeout: count(1, 7 * 24 * 3600).default(3600),
    drainGraceSeconds: count(0, 24 * 3600).default(60),
    stallTimeout: count(1, 3600).default(60),
    downloadParts: count(1, 16).default(4),
    downloadPartThreshold: byteSize
      .refine((n) => n >= 1024 * 1024, { message: "must be at least 1M (smaller files are not worth splitting)" })
      .default(64 * 1024 ** 2),
    caFile: z.string().min(1).optional(),
    hfToken: z.string().min(1).optional(),
    /** Variables passed to engine processes beside the minimal set (engineEnv). */
    engineEnv: engineEnvNames.default([]),
    labels: labelList.default({}),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    progress: z.enum(["auto", "bars", "log"]).default("auto"),
  }).transform(({ workDir, ...c }) => ({ ...c, workDir: workDir ?? join(c.cacheDir, WORK_SUBDIR) }));
}
export type WorkerConfig = z.output<ReturnType<typeof workerConfigSchema>>;
export type WorkerConfigInput = z.input<ReturnType<typeof workerConfigSchema>>;

/** Which environment variable feeds which setting. */
export const WORKER_ENV: Record<keyof WorkerConfig, string> = {
  server: "STUDIO_SERVER",
  token: "STUDIO_TOKEN",
  name: "STUDIO_WORKER_NAME",
  cacheDir: "STUDIO_CACHE_DIR",
  cacheMaxBytes: "STUDIO_CACHE_MAX_BYTES",
  workDir: "STUDIO_WORK_DIR",
  slots: "STUDIO_SLOTS",
  gpus: "STUDIO_GPUS",
  slotGpus: "STUDIO_SLOT_GPUS",
  nvidiaSmi: "STUDIO_NVIDIA_SMI",
  rocmSmi: "STUDIO_ROCM_SMI",
  gpuPollSeconds: "STUDIO_GPU_POLL_SECONDS",
  sdCli: "STUDIO_SD_CLI",
  llamaServer: "STUDIO_LLAMA_SERVER",
  engines: "STUDIO_ENGINES",
  llamaIdleSeconds: "STUDIO_LLAMA_IDLE_SECONDS",
  llamaCtxSize: "STUDIO_LLAMA_CTX_SIZE",
  llamaGpuLayers: "STUDIO_LLAMA_GPU_LAYERS",
  syntheticStepMs: "STUDIO_SYNTHETIC_STEP_MS",
  jobTimeout: "STUDIO_JOB_TIMEOUT",
  drainGraceSeconds: "STUDIO_DRAIN_GRACE_SECONDS",
  stallTimeout: "STUDIO_STALL_TIMEOUT",
  downloadParts: "STUDIO_DOWNLOAD_PARTS",
  downloadPartThreshold: "STUDIO_DOWNLOAD_PART_THRESHOLD",
  caFile: "STUDIO_CA_FILE",
  hfToken: "HF_TOKEN",
  engineEnv: "STUDIO_ENGINE_ENV",
  labels: "STUDIO_LABELS",
  logLevel: "STUDIO_LOG_LEVEL",
  progress: "STUDIO_PROGRESS",
};

/** The program each engine runs; synthetic runs none. */
export const ENGINE_PROGRAMS = { "sd-cpp": "sd-cli", "llama-cpp": "llama-server" } as const;

/** A configuration that cannot run: names the setting and what is wrong. */
export class WorkerConfigError extends Error {
  readonly code = "bad_config";
  constructor(message: string) {
    super(message);
    this.name = "WorkerConfigError";
  }
}

/** The engines a worker will run, each with the program it found. */
export interface ResolvedEngines {
  sdCli?: string;
  llamaServer?: string;
  synthetic: boolean;
}

/**
 * Decides which engines run. Without --engines: each engine whose program was given or is on
 * PATH (never synthetic, which must be asked for, so that placeholder bytes cannot answer real
 * jobs by accident). With --engines: each named engine must have its program, or start-up stops.
 */
export function resolveEngines(
  config: Pick<WorkerConfig, "engines" | "sdCli" | "llamaServer">,
  find: { onPath(name: string): string | undefined; isExecutable(path: string): boolean },
): ResolvedEngines {
  const program = (flag: "--sd-cli" | "--llama-server", given: string | undefined, name: string) => {
    if (given !== undefined) {
      if (!find.isExecutable(given)) throw new WorkerConfigError(`${flag}: ${given} is not an executable file`);
      return given;
    }
    return find.onPath(name);
  };
  const sdCli = program("--sd-cli", config.sdCli, ENGINE_PROGRAMS["sd-cpp"]);
  const llamaServer = program("--llama-server", config.llamaServer, ENGINE_PROGRAMS["llama-cpp"]);
  if (config.engines === undefined) return { sdCli, llamaServer, synthetic: false };
  const wanted = new Set(config.engines);
  if (wanted.has("sd-cpp") && !sdCli)
    throw new WorkerConfigError("--engines names sd-cpp but sd-cli was not found on PATH; pass --sd-cli PATH");
  if (wanted.has("llama-cpp") && !llamaServer)
    throw new WorkerConfigError(
      "--engines names llama-cpp but llama-server was not found on PATH; pass --llama-server PATH",
    );
  return {
    sdCli: wanted.has("sd-cpp") ? sdCli : undefined,
    llamaServer: wanted.has("llama-cpp") ? llamaServer : undefined,
    synthetic: wanted.has("synthetic"),
  };
}
