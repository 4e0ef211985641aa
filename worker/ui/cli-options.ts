import { Command, Option } from "commander";
import { formatIssues, issuesFromZod } from "../../contract/issues.js";
import {
  WORKER_ENV,
  WorkerConfigError,
  defaultDirs,
  workerConfigSchema,
  type WorkerConfig,
  type WorkerConfigInput,
} from "../config.js";

const FLAGS: Array<[keyof WorkerConfig, string, string]> = [
  ["server", "--server <url>", "the studio's URL (required); repeat or comma-list replicas"],
  ["token", "--token <token>", "bearer token the studio gave this worker; prefer the variable (a flag shows in ps)"],
  ["name", "--name <name>", "name shown to operators (default: the host name)"],
  ["cacheDir", "--cache-dir <dir>", "where downloaded model files are kept (default: {cacheDir})"],
  ["cacheMaxBytes", "--cache-max-bytes <size>", "model cache budget, like 200G (least recently used files go first; default 100G)"],
  ["workDir", "--work-dir <dir>", "parent of the per-job work directories, private to this user (made 0700; each removed after its job; at start, those of a dead worker are removed and its engine processes killed; default: {workDir}, under --cache-dir)"],
  ["slots", "--slots <n>", "jobs run at once (default: one per GPU used, 1 without a GPU); with GPUs, spread over them in turn"],
  ["gpus", "--gpus <all|none|list>", "GPUs to run jobs on: all (default), none (CPU only, no look for GPUs), or indexes as nvidia-smi/rocm-smi number them, like 0,2"],
  ["slotGpus", "--slot-gpus <list>", "each slot's GPU, like 0,0,1 (two jobs at once on GPU 0, one on GPU 1); replaces --slots"],
  ["nvidiaSmi", "--nvidia-smi <path>", "nvidia-smi, to read NVIDIA GPUs (default: nvidia-smi on PATH)"],
  ["rocmSmi", "--rocm-smi <path>", "rocm-smi, to read AMD GPUs (default: rocm-smi on PATH)"],
  ["gpuPollSeconds", "--gpu-poll-seconds <s>", "read the GPUs' memory again this often, in seconds (default 10)"],
  ["sdCli", "--sd-cli <path>", "stable-diffusion.cpp's sd-cli (default: sd-cli on PATH)"],
  ["llamaServer", "--llama-server <path>", "llama.cpp's llama-server (default: llama-server on PATH)"],
  ["engines", "--engines <list>", "comma list of sd-cpp, llama-cpp, synthetic (default: each engine whose program is found; synthetic only when named)"],
  ["llamaIdleSeconds", "--llama-idle-seconds <s>", "stop a warm llama-server after this long without work (default 300)"],
  ["llamaCtxSize", "--llama-ctx-size <n>", "llama-server context size (-c)"],
  ["llamaGpuLayers", "--llama-gpu-layers <n>", "llama-server layers on the GPU (-ngl; default: all of them on a GPU slot)"],
  ["syntheticStepMs", "--synthetic-step-ms <ms>", "delay per step of the synthetic engine, so demos show progress (default 0)"],
  ["jobTimeout", "--job-timeout <s>", "longest a job's engine may run, in seconds (default 3600)"],
  ["drainGraceSeconds", "--drain-grace-seconds <s>", "on SIGTERM, how long in-flight jobs may take before they are cancelled (default 60)"],
  ["stallTimeout", "--stall-timeout <s>", "abort (and retry) a download that receives no bytes for this long, in seconds (1-3600, default 60)"],
  ["downloadParts", "--download-parts <n>", "parallel ranges for a large file when its server accepts ranges (1-16, default 4)"],
  ["downloadPartThreshold", "--download-part-threshold <size>", "files at least this large are fetched in parallel ranges, like 64M (default 64M, at least 1M)"],
  ["caFile", "--ca-file <file>", "PEM CA certificate to trust for an https:// studio"],
  ["hfToken", "--hf-token <token>", "Hugging Face token, sent to Hugging Face hosts only"],
  ["labels", "--labels <k=v,...>", "labels shown to operators"],
  ["engineEnv", "--engine-env <names>", "comma list of environment variables to pass to engines too; they otherwise get PATH, HOME, locale, temp dir, LD_LIBRARY_PATH and GPU runtime settings (CUDA_*, HIP_*, GGML_*, ...), never STUDIO_TOKEN or HF_TOKEN"],
  ["logLevel", "--log-level <level>", "fatal, error, warn, info, debug, trace or silent (default info)"],
  ["progress", "--progress <mode>", "auto (bars on a terminal, else JSON log lines), bars or log"],
];

/**
 * The command-line program: flags with their environment variables, readable --help. The default
 * directories shown are the ones this environment gives (XDG_CACHE_HOME, the temp dir).
 */
export function workerCommand(version: string, env: Record<string, string | undefined> = process.env): Command {
  const dirs = defaultDirs(env);
  const program = new Command("studio-worker")
    .description(
      "Studio worker: keeps a session to the studio, downloads the model files each job names (verified, " +
        "cached) and runs them with sd-cli (images) or llama-server (text). SIGTERM drains; a second signal stops at once.",
    )
    .version(version)
    .showHelpAfterError()
    .allowExcessArguments(false);
  for (const [key, flags, help] of FLAGS) {
    const text = help.replace("{cacheDir}", dirs.cacheDir).replace("{workDir}", dirs.workDir);
    const option = new Option(flags, `${text} [env ${WORKER_ENV[key]}]`);
    // --server may be given more than once: the URLs add up (a comma list, as STUDIO_SERVER takes).
    if (key === "server") option.argParser((value: string, previous: string | undefined) => (previous ? `${previous},${value}` : value));
    program.addOption(option);
  }
  return program;
}

/**
 * Parses argv and the environment (flags win) into a validated config. Throws WorkerConfigError naming every
 * bad setting; commander itself exits for --help, --version and unknown flags.
 */
export function parseWorkerArgs(
  argv: string[],
  { version = "0.0.0", env = process.env }: { version?: string; env?: Record<string, string | undefined> } = {},
): WorkerConfig {
  const program = workerCommand(version, env);
  program.parse(argv);
  const opts = program.opts<Record<string, string | undefined>>();
  const input: Record<string, string> = {};
  for (const [key] of FLAGS) {
    const value = opts[key] ?? env[WORKER_ENV[key]];
    if (value !== undefined && value !== "") input[key] = value;
  }
  if (input.server === undefined) throw new WorkerConfigError("--server is required (or set STUDIO_SERVER)");
  const parsed = workerConfigSchema(defaultDirs(env)).safeParse(input as WorkerConfigInput, { reportInput: true });
  if (!parsed.success) {
    const issues = issuesFromZod(parsed.error).map((i) => ({ ...i, path: flagOf(i.path) }));
    throw new WorkerConfigError(formatIssues(issues));
  }
  return parsed.data;
}

function flagOf(path: string): string {
  const key = path.split(/[.[]/)[0] as keyof WorkerConfig;
  const row = FLAGS.find(([k]) => k === key);
  return row ? `${row[1].split(" ")[0]} (${WORKER_ENV[key]})` : path;
}
