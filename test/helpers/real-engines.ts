import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import { GgufType, f32Tensor, readGguf, writeGguf } from "./gguf.js";
import { writeSafetensors } from "./safetensors.js";

/**
 * The real engines for tests: llama.cpp's `llama-server` and stable-diffusion.cpp's `sd-cli`, built
 * for CPU, with tiny random-weight models (../shared/engines/README.md says how they were made).
 * Tests find them through STUDIO_TEST_ENGINES (CI and land.sh set it); where it is unset the
 * real-engine tests are skipped and the run says so (here and in scripts/test.sh).
 */
export const ENGINES_ENV = "STUDIO_TEST_ENGINES";

/** The unpacked VAE's sha256, from the engines README. */
const VAE_SHA256 = "e661559b6e20eaba945c907930da22950ee2bbacf1148d158f28ff93a0bce27b";

/** A model file a test can serve: where it is, its sha256 and size. */
export interface ModelFileOnDisk {
  name: string;
  path: string;
  sha256: string;
  size: number;
}

/** The models: the shared ones, the VAE unpacked, and variants derived from tiny-llama.gguf. */
export type RealModelName =
  | "tiny-llama.gguf"
  | "tiny-llama-r1.gguf"
  /** make-tiny-llama.py --raw-bytes: control and high bytes are sampled; chat replies fail mid-stream. */
  | "tiny-llama-raw-bytes.gguf"
  /** make-tiny-llama.py --ctx 32768: an unbounded reply runs for many seconds (to cancel or kill). */
  | "tiny-llama-long.gguf"
  /** The first 100,000 bytes of tiny-llama.gguf: llama-server fails to load it. */
  | "tiny-llama-truncated.gguf"
  | "tiny-zimage-dit.gguf"
  /** The first 100,000 bytes of the Z-Image DiT: sd-cli fails to read its tensors. */
  | "tiny-zimage-dit-truncated.gguf"
  | "tiny-zimage-qwen3.gguf"
  | "tiny-zimage-vae.safetensors"
  /** A rank-4 LoRA for the tiny Z-Image DiT (two linear layers): applied, it changes the image. */
  | "tiny-zimage-lora.safetensors"
  /** 4 KiB that are no model format: sd-cli logs that it cannot load it and goes on (exit 0). */
  | "tiny-zimage-lora-broken.safetensors";

export interface RealEngines {
  dir: string;
  llamaServer: string;
  sdCli: string;
  /** Where unpacked and derived models are kept between runs (private to this user). */
  cacheDir: string;
  model(name: RealModelName): ModelFileOnDisk;
}

let resolved: RealEngines | undefined | null = null;
let noticeShown = false;

/**
 * The real engines, or undefined (with a plain notice, once) when STUDIO_TEST_ENGINES is unset.
 * A set variable that names a directory without the engines is an error, never a silent skip.
 */
export function realEngines(): RealEngines | undefined {
  if (resolved !== null) return resolved;
  const dir = process.env[ENGINES_ENV];
  if (!dir) {
    if (!noticeShown) {
      noticeShown = true;
      console.warn(
        `NOTICE: ${ENGINES_ENV} is unset: the real-engine tests (llama-server, sd-cli) did NOT run. ` +
          `Set it to the engines directory (../shared/engines on CI; scripts/build-engines.sh makes one).`,
      );
    }
    resolved = undefined;
    return undefined;
  }
  const abs = resolve(dir);
  for (const name of ["llama-server", "sd-cli", "tiny-llama.gguf", "tiny-llama-r1.gguf", "tiny-zimage-dit.gguf", "tiny-zimage-qwen3.gguf", "tiny-zimage-vae.safetensors.gz"])
    if (!existsSync(join(abs, name))) throw new Error(`${ENGINES_ENV}=${dir}: ${name} is missing there`);
  const cacheDir = privateCacheDir();
  const memo = new Map<RealModelName, ModelFileOnDisk>();
  resolved = {
    dir: abs,
    llamaServer: join(abs, "llama-server"),
    sdCli: join(abs, "sd-cli"),
    cacheDir,
    model(name) {
      let file = memo.get(name);
      if (!file) {
        file = materialize(abs, cacheDir, name);
        memo.set(name, file);
      }
      return file;
    },
  };
  return resolved;
}

/** True when the real-engine tests run; use with describe.skipIf(!hasRealEngines). */
export const hasRealEngines = realEngines() !== undefined;

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function privateCacheDir(): string {
  const dir = join(tmpdir(), `studio-test-engines-${userInfo().uid}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== userInfo().uid || (st.mode & 0o077) !== 0)
    throw new Error(`${dir} must be a directory of ours, mode 0700 (it is not); remove it`);
  return dir;
}

/** Writes bytes under the cache by write-then-rename, so a reader never sees a partial file. */
function writeCached(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
}

function onDisk(name: string, path: string, digest?: string): ModelFileOnDisk {
  const bytes = readFileSync(path);
  return { name, path, sha256: digest ?? sha256(bytes), size: statSync(path).size };
}

function materialize(dir: string, cacheDir: string, name: RealModelName): ModelFileOnDisk {
  switch (name) {
    case "tiny-llama.gguf":
    case "tiny-llama-r1.gguf":
    case "tiny-zimage-dit.gguf":
    case "tiny-zimage-qwen3.gguf":
      return onDisk(name, join(dir, name));
    case "tiny-zimage-vae.safetensors": {
      // 75 MB unpacked, mostly zeros: gunzipped once into the cache, checked against the README's digest.
      const path = join(cacheDir, name);
      if (existsSync(path) && statSync(path).size > 0) return { name, path, sha256: VAE_SHA256, size: statSync(path).size };
      const bytes = gunzipSync(readFileSync(join(dir, `${name}.gz`)));
      const digest = sha256(bytes);
      if (digest !== VAE_SHA256) throw new Error(`${name}.gz unpacks to sha256 ${digest}, not ${VAE_SHA256}`);
      writeCached(path, bytes);
      return { name, path, sha256: digest, size: bytes.byteLength };
    }
    case "tiny-zimage-lora.safetensors":
    case "tiny-zimage-lora-broken.safetensors": {
      const path = join(cacheDir, `v1-${name}`);
      if (!existsSync(path)) writeCached(path, name === "tiny-zimage-lora.safetensors" ? zimageLora() : deterministicBytes(4096));
      return onDisk(name, path);
    }
    case "tiny-llama-raw-bytes.gguf":
    case "tiny-llama-long.gguf":
    case "tiny-llama-truncated.gguf":
    case "tiny-zimage-dit-truncated.gguf": {
      const source = name === "tiny-zimage-dit-truncated.gguf" ? "tiny-zimage-dit.gguf" : "tiny-llama.gguf";
      const input = readFileSync(join(dir, source));
      const path = join(cacheDir, `${sha256(input).slice(0, 16)}-${name}`);
      if (!existsSync(path)) writeCached(path, derive(name, new Uint8Array(input)));
      return onDisk(name, path);
    }
  }
}

/**
 * The variants make-tiny-llama.py writes with --raw-bytes or --ctx N, derived from tiny-llama.gguf:
 * the generator draws the same random weights whatever the flags, so patching the base model gives
 * the same file it would. --raw-bytes only skips setting output.weight[suppressed, 0] to -5 (the
 * column is 0 otherwise); --ctx only changes llama.context_length.
 */
function derive(name: RealModelName, input: Uint8Array): Uint8Array {
  if (name.endsWith("-truncated.gguf")) return input.subarray(0, 100_000);
  const file = readGguf(input);
  if (name === "tiny-llama-long.gguf") {
    file.kv.set("llama.context_length", { type: GgufType.UINT32, value: 32768 });
    return writeGguf(file);
  }
  const out = f32Tensor(file, "output.weight");
  let changed = 0;
  for (let row = 0; row < out.rows; row++)
    if (out.values[row * out.cols] === -5) {
      out.values[row * out.cols] = 0;
      changed++;
    }
  if (changed === 0) throw new Error("tiny-llama.gguf has no suppressed tokens: is it the generator's default output?");
  return writeGguf(file);
}

/** A fixed pseudo-random sequence (an LCG), so the derived files are the same bytes on every machine. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function deterministicBytes(n: number): Uint8Array {
  const next = lcg(7);
  return Uint8Array.from({ length: n }, () => Math.floor(next() * 256));
}

/**
 * A LoRA in the kohya/ComfyUI naming sd-cli reads for Z-Image (`diffusion_model.<layer>.lora_down`
 * and `.lora_up`), rank 4, on the DiT's `layers.0.attention.out` (256 -> 256) and
 * `final_layer.linear` (256 -> 64). sd-cli logs "(4 / 4) LoRA tensors have been applied".
 */
function zimageLora(): Uint8Array {
  const next = lcg(11);
  const rank = 4;
  const fill = (n: number) => Float32Array.from({ length: n }, () => (next() - 0.5) * 2);
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [layer, out] of [["layers.0.attention.out", 256], ["final_layer.linear", 64]] as const) {
    tensors[`diffusion_model.${layer}.lora_down.weight`] = { shape: [rank, 256], data: fill(rank * 256) };
    tensors[`diffusion_model.${layer}.lora_up.weight`] = { shape: [out, rank], data: fill(out * rank) };
  }
  return writeSafetensors(tensors);
}
