import { ModelFileRole, type ModelSource } from "../gen/studio/v1/model_pb.js";
import type { ImageTask } from "../gen/studio/v1/job_pb.js";
import { describeValue, type ValidationIssue } from "./issues.js";
import { SOURCE_LIMITS } from "./model-source.js";

/**
 * sd-cli's LoRA tag, as stable-diffusion.cpp reads it from the prompt (examples/common/common.cpp,
 * extract_and_remove_lora): `<lora:NAME:WEIGHT>`, NAME without ':' or '>', an optional
 * `|high_noise|` prefix on NAME for Wan 2.2's high-noise model. sd-cli joins NAME to
 * --lora-model-dir, tries it with .gguf, .safetensors, .pt and .ckpt, and also takes absolute
 * paths and `..`: a prompt could make it open any file on the worker. So a prompt may only name
 * the source's own LoRA files, and only by a bare name.
 */
export const LORA_TAG = /<lora:([^:>]+):([^>]+)>/g;
const HIGH_NOISE = "|high_noise|";
/** What a plain decimal weight looks like (sd-cli's std::stof would also take "1abc" or "inf"). */
const WEIGHT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** One LoRA tag of a prompt, resolved to a LoRA file of the source. */
export interface LoraReference {
  /** The tag as written. */
  tag: string;
  /** The source's file name it names. */
  filename: string;
  weight: number;
  highNoise: boolean;
}

/** The source's LoRA files by every name a tag may use: the file name, and its stem when no other LoRA shares it. */
function loraNames(source: ModelSource | undefined): Map<string, string | null> {
  const names = new Map<string, string | null>();
  for (const f of source?.files ?? []) {
    if (f.role !== ModelFileRole.LORA) continue;
    names.set(f.filename, f.filename);
    const dot = f.filename.lastIndexOf(".");
    if (dot > 0) {
      const stem = f.filename.slice(0, dot);
      // Two LoRAs with one stem (style.gguf, style.safetensors): the stem names neither.
      if (!names.has(stem)) names.set(stem, f.filename);
      else if (names.get(stem) !== f.filename) names.set(stem, null);
    }
  }
  return names;
}

/**
 * Reads the LoRA tags of a prompt against the source's LoRA files: the references, and one issue
 * per tag that names anything else (a path, an unknown or ambiguous name), has a weight that is
 * not a number from -10 to 10, or is malformed (`<lora:` that sd-cli would not read as a tag).
 */
export function readLoraTags(text: string, source: ModelSource | undefined): { references: LoraReference[]; problems: string[] } {
  const names = loraNames(source);
  const references: LoraReference[] = [];
  const problems: string[] = [];
  const known = () => {
    const list = [...new Set([...names.values()].filter((v): v is string => v !== null))];
    return list.length === 0 ? "the model has no lora files" : `the model's lora files: ${list.join(", ")}`;
  };
  for (const match of text.matchAll(LORA_TAG)) {
    const tag = match[0];
    let name = match[1]!;
    const rawWeight = match[2]!.trim();
    const highNoise = name.startsWith(HIGH_NOISE);
    if (highNoise) name = name.slice(HIGH_NOISE.length);
    const filename = names.get(name);
    if (filename === undefined) {
      problems.push(`${describeValue(tag)} names ${describeValue(name)}, which is not a lora file of the model (${known()})`);
      continue;
    }
    if (filename === null) {
      problems.push(`${describeValue(tag)}: ${describeValue(name)} could be more than one lora file; use the full file name (${known()})`);
      continue;
    }
    const weight = Number(rawWeight);
    if (!WEIGHT.test(rawWeight) || !Number.isFinite(weight) || Math.abs(weight) > SOURCE_LIMITS.maxLoraWeight) {
      problems.push(`${describeValue(tag)}: the weight must be a number from -${SOURCE_LIMITS.maxLoraWeight} to ${SOURCE_LIMITS.maxLoraWeight} (got ${describeValue(rawWeight)})`);
      continue;
    }
    references.push({ tag, filename, weight, highNoise });
  }
  const rest = text.replace(LORA_TAG, "");
  if (rest.includes("<lora:"))
    problems.push(`a LoRA tag must read <lora:NAME:WEIGHT> (got ${describeValue(rest.slice(rest.indexOf("<lora:"), rest.indexOf("<lora:") + 60))})`);
  return { references, problems };
}

/**
 * The LoRA rules of an image task against the source it runs with: prompt tags may only name the
 * source's LoRA files; the negative prompt may hold none (sd-cli applies LoRAs from the prompt
 * only, so a tag there would reach the text encoder as words).
 */
export function loraTagIssues(task: ImageTask, source: ModelSource | undefined, prefix = "task.image"): ValidationIssue[] {
  const issues: ValidationIssue[] = readLoraTags(task.prompt, source).problems.map((message) => ({ path: `${prefix}.prompt`, message }));
  const negative = readLoraTags(task.negativePrompt, source);
  if (negative.references.length > 0 || negative.problems.length > 0 || task.negativePrompt.includes("<lora:"))
    issues.push({
      path: `${prefix}.negative_prompt`,
      message: "must not hold a LoRA tag (<lora:...>): LoRAs are applied from the prompt only",
    });
  return issues;
}
