import { LORA_TAG, effectiveCliSettings, readLoraTags, roleName } from "../../contract/index.js";
import type { ImageTask } from "../../gen/studio/v1/job_pb.js";
import { ModelFileRole, type ModelSource } from "../../gen/studio/v1/model_pb.js";
import { dirname, join } from "node:path";
import type { EngineFile } from "./types.js";

/** The file name sd-cli writes to in the work dir (`out.png`, or `out_0.png`, `out_1.png`, ... for a batch). */
export const SD_OUTPUT_NAME = "out.png";

/** sd-cli's flag for each file role (examples/common/common.cpp at the pinned commit; `sd-cli --help`). LoRAs go by tag. */
export const SD_FILE_FLAGS: Partial<Record<ModelFileRole, string>> = {
  [ModelFileRole.MODEL]: "--model",
  [ModelFileRole.DIFFUSION_MODEL]: "--diffusion-model",
  [ModelFileRole.TEXT_ENCODER]: "--llm",
  [ModelFileRole.VAE]: "--vae",
  [ModelFileRole.CLIP_L]: "--clip_l",
  [ModelFileRole.CLIP_G]: "--clip_g",
  [ModelFileRole.T5XXL]: "--t5xxl",
  [ModelFileRole.LLM_VISION]: "--llm_vision",
  [ModelFileRole.TAESD]: "--taesd",
  [ModelFileRole.HIGH_NOISE_DIFFUSION_MODEL]: "--high-noise-diffusion-model",
};

/** Raised when a prompt's LoRA tags name anything but the source's LoRA files (the studio refuses these too). */
export class LoraTagError extends Error {
  constructor(problems: string[]) {
    super(`the prompt's LoRA tags are refused: ${problems.join("; ")}`);
    this.name = "LoraTagError";
  }
}

/** How a weight is written in a tag: the shortest decimal that reads back as the same number. */
const weightText = (w: number) => String(w);

/**
 * The prompt sd-cli gets. Each of the task's LoRA tags names one of the source's LoRA files (else
 * LoraTagError) and is rewritten to that exact file name, so that sd-cli's own lookup (the name,
 * then NAME.gguf, .safetensors, .pt, .ckpt) cannot pick another file; then each LoRA file of the
 * source the prompt does not name is added with its weight (lora_weight, default 1; 0 leaves it off).
 * A negative prompt must hold no tag at all (sd-cli applies LoRAs from the prompt only).
 */
export function sdPrompt(task: ImageTask, source: ModelSource): string {
  const { references, problems } = readLoraTags(task.prompt, source);
  if (task.negativePrompt.includes("<lora:")) problems.push("the negative prompt must not hold a LoRA tag (<lora:...>): LoRAs are applied from the prompt only");
  if (problems.length > 0) throw new LoraTagError(problems);
  const byTag = new Map(references.map((r) => [r.tag, r]));
  let prompt = task.prompt.replace(LORA_TAG, (tag) => {
    const r = byTag.get(tag)!;
    return `<lora:${r.highNoise ? "|high_noise|" : ""}${r.filename}:${weightText(r.weight)}>`;
  });
  const named = new Set(references.filter((r) => !r.highNoise).map((r) => r.filename));
  for (const file of source.files) {
    if (file.role !== ModelFileRole.LORA || named.has(file.filename)) continue;
    const weight = file.loraWeight ?? 1;
    if (weight !== 0) prompt += ` <lora:${file.filename}:${weightText(weight)}>`;
  }
  return prompt;
}

/** The paths sd-cli writes for a batch of `count` images from `-o <workDir>/out.png`. */
export function sdOutputPaths(workDir: string, count: number): string[] {
  if (count <= 1) return [join(workDir, SD_OUTPUT_NAME)];
  return Array.from({ length: count }, (_, i) => join(workDir, `out_${i}.png`));
}

/**
 * sd-cli's argv for an image task: one flag per model file in source order (SD_FILE_FLAGS, and
 * --lora-model-dir once for the lora files), then -p (sdPrompt: with the LoRA tags), -n (when
 * set), -s (when set), -b, the effective cli settings (--cfg-scale, --steps, -W, -H,
 * --sampling-method; the task's overrides win), -o, then `extraArgs`.
 */
export function sdCliArgs(input: {
  task: ImageTask;
  source: ModelSource;
  files: EngineFile[];
  loraDir?: string;
  workDir: string;
  extraArgs?: string[];
}): string[] {
  const args: string[] = [];
  let loraDir = input.loraDir;
  for (const file of input.files) {
    if (file.role === ModelFileRole.LORA) {
      loraDir ??= dirname(file.path);
      continue;
    }
    const flag = SD_FILE_FLAGS[file.role];
    if (!flag) throw new RangeError(`file ${JSON.stringify(file.filename)} has a role sd-cli has no flag for (${roleName(file.role) ?? file.role})`);
    args.push(flag, file.path);
  }
  if (loraDir !== undefined && input.files.some((f) => f.role === ModelFileRole.LORA)) args.push("--lora-model-dir", loraDir);
  const { task } = input;
  args.push("-p", sdPrompt(task, input.source));
  if (task.negativePrompt !== "") args.push("-n", task.negativePrompt);
  if (task.seed !== undefined) args.push("-s", task.seed.toString());
  args.push("-b", String(Math.max(1, task.batchCount)));
  const s = effectiveCliSettings(input.source.cliDefaults, task.overrides);
  if (s.cfgScale !== undefined) args.push("--cfg-scale", String(s.cfgScale));
  if (s.steps !== undefined) args.push("--steps", String(s.steps));
  if (s.width !== undefined) args.push("-W", String(s.width));
  if (s.height !== undefined) args.push("-H", String(s.height));
  if (s.samplingMethod !== undefined) args.push("--sampling-method", s.samplingMethod);
  args.push("-o", join(input.workDir, SD_OUTPUT_NAME));
  args.push(...(input.extraArgs ?? []));
  return args;
}
