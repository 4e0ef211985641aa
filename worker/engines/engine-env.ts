/** Variables an engine gets by name: where programs and libraries are, the user, locale, time zone, temp dir. */
const NAMES: ReadonlySet<string> = new Set(["PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TMP", "TEMP", "LD_LIBRARY_PATH"]);

/** Prefixes of the variables GPU runtimes and the engines' compute libraries read (devices, threads, ggml and llama.cpp settings). */
const PREFIXES = [
  "LC_", "CUDA_", "NVIDIA_", "HIP_", "HSA_", "ROCM_", "ROCR_", "GPU_", "GGML_", "LLAMA_ARG_",
  "VK_", "MESA_", "ZE_", "ONEAPI_", "SYCL_", "OMP_", "KMP_", "MKL_", "OPENBLAS_", "GOTO_",
];

/** The worker's own secrets: never handed to an engine, not even when named in --engine-env. */
export const WORKER_SECRETS: ReadonlySet<string> = new Set(["STUDIO_TOKEN", "HF_TOKEN"]);

/**
 * The environment an engine process gets: only what engines and their GPU runtimes need (NAMES,
 * PREFIXES) plus the variables an operator names (--engine-env). The worker's token, the Hugging
 * Face token and anything else in its environment stay with the worker: an engine runs prompts
 * and model files from the network and has no use for them.
 */
export function engineEnv(extra: readonly string[] = [], from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  const wanted = new Set(extra);
  for (const [name, value] of Object.entries(from)) {
    if (value === undefined || WORKER_SECRETS.has(name)) continue;
    if (NAMES.has(name) || wanted.has(name) || PREFIXES.some((p) => name.startsWith(p))) env[name] = value;
  }
  return env;
}
