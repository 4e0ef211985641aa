import { parseByteSize } from "../contract/byte-size.js";
import { httpUrlProblem, withoutCredentials } from "../contract/http-url.js";
import { z } from "zod";
import { homedir, hostname } from "node:os";
import { join } from "node:path";
import { ENGINE_NAMES, type EngineName } from "../contract/names.js";
import { ConfigError, integerSetting, logLevelSetting, Refusal, settingsSchema, textSetting, type Settings } from "../contract/settings.js";
import { WORKER_SECRETS } from "./engines/engine-env.js";
import { parseGpuChoice, parseIndexList } from "./gpus/gpu-plan.js";

const byteSize = textSetting((text) => {
  const n = parseByteSize(text);
  return n !== undefined && Number.isSafeInteger(n) ? n : new Refusal(`must be a byte size like 500M or 50G (got ${JSON.stringify(text)})`);
});

/** The items of a comma list, trimmed, empty ones dropped. */
const commaList = (text: string) => text.split(",").map((s) => s.trim()).filter((s) => s !== "");

/** Most studio URLs one worker rotates through. */
export const MAX_SERVERS = 16;

/**
 * One or more studio URLs (--server repeated, or a comma list): replicas of one studio that
 * the worker rotates through when a session ends. Behind a load balancer one URL is enough.
 */
const serverList = textSetting((text) => {
  const urls = [...new Set(commaList(text))];
  if (urls.length === 0 || urls.length > MAX_SERVERS) return new Refusal(`must name 1 to ${MAX_SERVERS} studio URLs (got ${urls.length})`);
  for (const url of urls) {
    const problem = httpUrlProblem(url);
    if (problem) return new Refusal(`${problem} (got ${JSON.stringify(withoutCredentials(url))}); a token goes in --token`);
  }
  return urls;
});

const engineList = textSetting((text) => {
  const names = commaList(text);
  const unknown = names.filter((n) => !(ENGINE_NAMES as readonly string[]).includes(n));
  if (unknown.length > 0)
    return new Refusal(`unknown engine ${unknown.map((n) => JSON.stringify(n)).join(", ")}; choose from ${ENGINE_NAMES.join(", ")}`);
  if (names.length === 0) return new Refusal("must name at least one engine");
  return [...new Set(names)] as EngineName[];
});

const labelList = textSetting((text) => {
  const labels: Record<string, string> = {};
  for (const pair of text.split(",").filter((s) => s.trim() !== "")) {
    const eq = pair.indexOf("=");
    const key = eq > 0 ? pair.slice(0, eq).trim() : "";
    if (!/^[A-Za-z0-9_.-]{1,63}$/.test(key) || pair.length > 320)
      return new Refusal(`must be key=value pairs separated by commas (got ${JSON.stringify(pair)})`);
    labels[key] = pair.slice(eq + 1).trim();
  }
  return labels;
});

/** --engine-env: a comma list of environment variable names, never the worker's own secrets. */
const engineEnvNames = textSetting((text) => {
  const names = commaList(text);
  for (const n of names) {
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(n))
      return new Refusal(`must be environment variable names separated by commas (got ${JSON.stringify(n.slice(0, 80))})`);
    if (WORKER_SECRETS.has(n)) return new Refusal(`${n} is the worker's own secret and is never passed to engines`);
  }
  return names;
});

const partThreshold = byteSize.refine((n) => n >= 1024 * 1024, { message: "must be at least 1M (smaller files are not worth splitting)" });

const gpuChoice = textSetting((text) => {
  const choice = parseGpuChoice(text);
  return typeof choice === "string" ? new Refusal(choice) : choice;
});

const slotGpuList = textSetting((text) => {
  const list = parseIndexList(text.trim());
  if (typeof list === "string") return new Refusal(`must list each slot's GPU index, like 0,0,1 (${list})`);
  return list.length > 64 ? new Refusal(`maps at most 64 slots (got ${list.length})`) : list;
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
 * Every setting of the worker: its flag (the key in kebab case), variable, help and rule, in --help's order.
 * The directories shown are the ones this environment gives (XDG_CACHE_HOME, the home dir).
 */
export function workerSettings(dirs = defaultDirs()) {
  return {
    server: { arg: "<url>", env: "STUDIO_SERVER", repeatable: true, rule: serverList, help: "the studio's URL (required); repeat or comma-list replicas" },
    token: { arg: "<token>", env: "STUDIO_TOKEN", secret: true, rule: z.string().min(1).max(4096).optional(), help: "bearer token the studio gave this worker; prefer the variable (a flag shows in ps)" },
    name: { arg: "<name>", env: "STUDIO_WORKER_NAME", rule: z.string().trim().min(1).max(128).default(hostname()), help: "name shown to operators (default: the host name)" },
    cacheDir: { arg: "<dir>", env: "STUDIO_CACHE_DIR", rule: z.string().min(1).default(dirs.cacheDir), help: `where downloaded model files are kept (default: ${dirs.cacheDir})` },
    cacheMaxBytes: { arg: "<size>", env: "STUDIO_CACHE_MAX_BYTES", rule: byteSize.default(100 * 1024 ** 3), help: "model cache budget, like 200G (least recently used files go first; default 100G)" },
    workDir: { arg: "<dir>", env: "STUDIO_WORK_DIR", rule: z.string().min(1).optional(), help: `parent of the per-job work directories, private to this user (made 0700; each removed after its job; at start, those of a dead worker are removed and its engine processes killed; default: ${dirs.workDir}, under --cache-dir)` },
    slots: { arg: "<n>", env: "STUDIO_SLOTS", rule: integerSetting(1, 64).optional(), help: "jobs run at once (default: one per GPU used, 1 without a GPU); with GPUs, spread over them in turn" },
    gpus: { arg: "<all|none|list>", env: "STUDIO_GPUS", rule: gpuChoice.default({ kind: "all" }), help: "GPUs to run jobs on: all (default), none (CPU only, no look for GPUs), or indexes as nvidia-smi/rocm-smi number them, like 0,2" },
    slotGpus: { arg: "<list>", env: "STUDIO_SLOT_GPUS", rule: slotGpuList.optional(), help: "each slot's GPU, like 0,0,1 (two jobs at once on GPU 0, one on GPU 1); replaces --slots" },
    nvidiaSmi: { arg: "<path>", env: "STUDIO_NVIDIA_SMI", rule: z.string().min(1).optional(), help: "nvidia-smi, to read NVIDIA GPUs (default: nvidia-smi on PATH)" },
    rocmSmi: { arg: "<path>", env: "STUDIO_ROCM_SMI", rule: z.string().min(1).optional(), help: "rocm-smi, to read AMD GPUs (default: rocm-smi on PATH)" },
    gpuPollSeconds: { arg: "<s>", env: "STUDIO_GPU_POLL_SECONDS", rule: integerSetting(1, 3600).default(10), help: "read the GPUs' memory again this often, in seconds (default 10)" },
    sdCli: { arg: "<path>", env: "STUDIO_SD_CLI", rule: z.string().min(1).optional(), help: "stable-diffusion.cpp's sd-cli (default: sd-cli on PATH)" },
    llamaServer: { arg: "<path>", env: "STUDIO_LLAMA_SERVER", rule: z.string().min(1).optional(), help: "llama.cpp's llama-server (default: llama-server on PATH)" },
    engines: { arg: "<list>", env: "STUDIO_ENGINES", rule: engineList.optional(), help: "comma list of sd-cpp, llama-cpp, synthetic (default: each engine whose program is found; synthetic only when named)" },
    llamaIdleSeconds: { arg: "<s>", env: "STUDIO_LLAMA_IDLE_SECONDS", rule: integerSetting(1, 7 * 24 * 3600).default(300), help: "stop a warm llama-server after this long without work (default 300)" },
    llamaCtxSize: { arg: "<n>", env: "STUDIO_LLAMA_CTX_SIZE", rule: integerSetting(0, 10_000_000).optional(), help: "llama-server context size (-c)" },
    llamaGpuLayers: { arg: "<n>", env: "STUDIO_LLAMA_GPU_LAYERS", rule: integerSetting(-1, 100_000).optional(), help: "llama-server layers on the GPU (-ngl; default: all of them on a GPU slot)" },
    syntheticStepMs: { arg: "<ms>", env: "STUDIO_SYNTHETIC_STEP_MS", rule: integerSetting(0, 60_000).default(0), help: "delay per step of the synthetic engine, so demos show progress (default 0)" },
    jobTimeout: { arg: "<s>", env: "STUDIO_JOB_TIMEOUT", rule: integerSetting(1, 7 * 24 * 3600).default(3600), help: "longest a job's engine may run, in seconds (default 3600)" },
    drainGraceSeconds: { arg: "<s>", env: "STUDIO_DRAIN_GRACE_SECONDS", rule: integerSetting(0, 24 * 3600).default(60), help: "on SIGTERM, how long in-flight jobs may take before they are cancelled (default 60)" },
    stallTimeout: { arg: "<s>", env: "STUDIO_STALL_TIMEOUT", rule: integerSetting(1, 3600).default(60), help: "abort (and retry) a download that receives no bytes for this long, in seconds (1-3600, default 60)" },
    downloadParts: { arg: "<n>", env: "STUDIO_DOWNLOAD_PARTS", rule: integerSetting(1, 16).default(4), help: "parallel ranges for a large file when its server accepts ranges (1-16, default 4)" },
    downloadPartThreshold: { arg: "<size>", env: "STUDIO_DOWNLOAD_PART_THRESHOLD", rule: partThreshold.default(64 * 1024 ** 2), help: "files at least this large are fetched in parallel ranges, like 64M (default 64M, at least 1M)" },
    caFile: { arg: "<file>", env: "STUDIO_CA_FILE", rule: z.string().min(1).optional(), help: "PEM CA certificate to trust for an https:// studio" },
    hfToken: { arg: "<token>", env: "HF_TOKEN", secret: true, rule: z.string().min(1).optional(), help: "Hugging Face token, sent to Hugging Face hosts only" },
    labels: { arg: "<k=v,...>", env: "STUDIO_LABELS", rule: labelList.default({}), help: "labels shown to operators" },
    engineEnv: { arg: "<names>", env: "STUDIO_ENGINE_ENV", rule: engineEnvNames.default([]), help: "comma list of environment variables to pass to engines too; they otherwise get PATH, HOME, locale, temp dir, LD_LIBRARY_PATH and GPU runtime settings (CUDA_*, HIP_*, GGML_*, ...), never STUDIO_TOKEN or HF_TOKEN" },
    logLevel: { arg: "<level>", env: "STUDIO_LOG_LEVEL", rule: logLevelSetting, help: "fatal, error, warn, info, debug, trace or silent (default info)" },
    progress: { arg: "<mode>", env: "STUDIO_PROGRESS", rule: z.enum(["auto", "bars", "log"]).default("auto"), help: "auto (bars on a terminal, else JSON log lines), bars or log" },
  } satisfies Settings;
}

/**
 * The worker's configuration, validated at start-up; workDir follows --cache-dir when only that is given.
 * Engine programs are resolved afterwards by `resolveEngines`.
 */
export function workerConfigSchema(dirs = defaultDirs()) {
  return settingsSchema(workerSettings(dirs)).transform(({ workDir, ...c }) => ({ ...c, workDir: workDir ?? join(c.cacheDir, WORK_SUBDIR) }));
}
export type WorkerConfig = z.output<ReturnType<typeof workerConfigSchema>>;

/** The program each engine runs; synthetic runs none. */
export const ENGINE_PROGRAMS = { "sd-cpp": "sd-cli", "llama-cpp": "llama-server" } as const;

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
      if (!find.isExecutable(given)) throw new ConfigError(`${flag}: ${given} is not an executable file`);
      return given;
    }
    return find.onPath(name);
  };
  const sdCli = program("--sd-cli", config.sdCli, ENGINE_PROGRAMS["sd-cpp"]);
  const llamaServer = program("--llama-server", config.llamaServer, ENGINE_PROGRAMS["llama-cpp"]);
  if (config.engines === undefined) return { sdCli, llamaServer, synthetic: false };
  const wanted = new Set(config.engines);
  if (wanted.has("sd-cpp") && !sdCli)
    throw new ConfigError("--engines names sd-cpp but sd-cli was not found on PATH; pass --sd-cli PATH");
  if (wanted.has("llama-cpp") && !llamaServer)
    throw new ConfigError(
      "--engines names llama-cpp but llama-server was not found on PATH; pass --llama-server PATH",
    );
  return {
    sdCli: wanted.has("sd-cpp") ? sdCli : undefined,
    llamaServer: wanted.has("llama-cpp") ? llamaServer : undefined,
    synthetic: wanted.has("synthetic"),
  };
}
