import { effectiveCliSettings } from "../../contract/index.js";
import type { ImageTask } from "../../gen/studio/v1/job_pb.js";
import { ModelFileRole, type ModelSource } from "../../gen/studio/v1/model_pb.js";
import { dirname, join } from "node:path";
import type { EngineFile } from "./types.js";

/** The file name sd-cli writes to in the work dir (`out.png`, or `out_0.png`, `out_1.png`, ... for a batch). */
export const SD_OUTPUT_NAME = "out.png";

const FILE_FLAGS: Partial<Record<ModelFileRole, string>> = {
  [ModelFileRole.MODEL]: "--model",
  [ModelFileRole.DIFFUSION_MODEL]: "--diffusion-model",
  [ModelFileRole.TEXT_ENCODER]: "--llm",
  [ModelFileRole.VAE]: "--vae",
};

/** The paths sd-cli writes for a batch of `count` images from `-o <workDir>/out.png`. */
export function sdOutputPaths(workDir: string, count: number): string[] {
  if (count <= 1) return [join(workDir, SD_OUTPUT_NAME)];
  return Array.from({ length: count }, (_, i) => join(workDir, `out_${i}.png`));
}

/**
 * sd-cli's argv for an image task: one flag per model file in source order (diffusion-model
 * --diffusion-model, text-encoder --llm, vae --vae, model --model, and --lora-model-dir once for
 * the lora files), then -p, -n (when set), -s (when set), -b, the effective cli settings
 * (--cfg-scale, --steps, -W, -H, --sampling-method; the task's overrides win), -o, then `extraArgs`.
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
    const flag = FILE_FLAGS[file.role];
    if (!flag) throw new RangeError(`file ${JSON.stringify(file.filename)} has a role sd-cli has no flag for (${file.role})`);
    args.push(flag, file.path);
  }
  if (loraDir !== undefined && input.files.some((f) => f.role === ModelFileRole.LORA)) args.push("--lora-model-dir", loraDir);
  const { task } = input;
  args.push("-p", task.prompt);
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
