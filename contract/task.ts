import type { ModelCliDefaults } from "../gen/studio/v1/model_pb.js";
import type { Task } from "../gen/studio/v1/job_pb.js";
import { checkCliDefaults } from "./model-source.js";
import { describeValue, type ValidationIssue } from "./issues.js";

/** Bounds on what a client may ask for in one task. */
export const TASK_LIMITS = {
  maxPromptChars: 16_000,
  maxBatchCount: 16,
  maxMessages: 256,
  maxMessageChars: 64_000,
  maxTotalTextChars: 256_000,
  maxTokens: 32_768,
  maxTemperature: 5,
  /** frequency_penalty and presence_penalty range over -maxPenalty..maxPenalty, as in OpenAI's API. */
  maxPenalty: 2,
  maxStopStrings: 16,
  maxStopChars: 256,
  /** Image seeds are non-negative and exact in a JS number, which every client language can carry (sd-cli keeps 64 bits). */
  maxSeed: BigInt(Number.MAX_SAFE_INTEGER),
  /**
   * Text seeds: llama-server keeps 32 bits of a seed (4294967301 samples as 5 does) and takes
   * 4294967295 as "pick a random one", so a deterministic seed is at most 4294967294.
   */
  maxTextSeed: 4_294_967_294n,
} as const;

const CHAT_ROLES = new Set(["system", "user", "assistant"]);

/** Every broken rule of a task, each naming the field and the bad value; empty when the task is valid. */
export function taskIssues(task: Task | undefined, prefix = "task"): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const add = (path: string, message: string) => issues.push({ path: `${prefix}.${path}`, message });
  if (!task || task.kind.case === undefined) {
    return [{ path: prefix, message: "must set image or text" }];
  }
  if (task.kind.case === "image") {
    const t = task.kind.value;
    if (t.prompt.trim() === "") add("image.prompt", "must not be empty");
    if (t.prompt.length > TASK_LIMITS.maxPromptChars)
      add("image.prompt", `must be at most ${TASK_LIMITS.maxPromptChars} characters (got ${t.prompt.length})`);
    if (t.negativePrompt.length > TASK_LIMITS.maxPromptChars)
      add(
        "image.negative_prompt",
        `must be at most ${TASK_LIMITS.maxPromptChars} characters (got ${t.negativePrompt.length})`,
      );
    if (t.batchCount > TASK_LIMITS.maxBatchCount)
      add("image.batch_count", `must be at most ${TASK_LIMITS.maxBatchCount} (got ${t.batchCount})`);
    checkSeed(t.seed, "image.seed", add);
    if (t.overrides)
      for (const issue of checkCliDefaults(t.overrides, `${prefix}.image.overrides`)) issues.push(issue);
    return issues;
  }
  const t = task.kind.value;
  const hasPrompt = t.prompt !== "";
  const hasMessages = t.messages.length > 0;
  if (hasPrompt === hasMessages) add("text", "must set exactly one of prompt and messages");
  if (t.prompt.length > TASK_LIMITS.maxPromptChars)
    add("text.prompt", `must be at most ${TASK_LIMITS.maxPromptChars} characters (got ${t.prompt.length})`);
  if (t.messages.length > TASK_LIMITS.maxMessages)
    add("text.messages", `must have at most ${TASK_LIMITS.maxMessages} messages (got ${t.messages.length})`);
  let total = t.prompt.length;
  t.messages.forEach((m, i) => {
    if (!CHAT_ROLES.has(m.role))
      add(`text.messages[${i}].role`, `must be system, user or assistant (got ${describeValue(m.role)})`);
    if (m.content.length > TASK_LIMITS.maxMessageChars)
      add(
        `text.messages[${i}].content`,
        `must be at most ${TASK_LIMITS.maxMessageChars} characters (got ${m.content.length})`,
      );
    total += m.content.length;
  });
  if (total > TASK_LIMITS.maxTotalTextChars)
    add("text", `must hold at most ${TASK_LIMITS.maxTotalTextChars} characters in all (got ${total})`);
  if (t.maxTokens !== undefined && (t.maxTokens < 1 || t.maxTokens > TASK_LIMITS.maxTokens))
    add("text.max_tokens", `must be from 1 to ${TASK_LIMITS.maxTokens} (got ${t.maxTokens})`);
  if (
    t.temperature !== undefined &&
    (!Number.isFinite(t.temperature) || t.temperature < 0 || t.temperature > TASK_LIMITS.maxTemperature)
  )
    add("text.temperature", `must be from 0 to ${TASK_LIMITS.maxTemperature} (got ${t.temperature})`);
  if (t.topP !== undefined && (!Number.isFinite(t.topP) || t.topP < 0 || t.topP > 1))
    add("text.top_p", `must be from 0 to 1 (got ${t.topP})`);
  for (const [value, path] of [
    [t.frequencyPenalty, "text.frequency_penalty"],
    [t.presencePenalty, "text.presence_penalty"],
  ] as const)
    if (value !== undefined && (!Number.isFinite(value) || Math.abs(value) > TASK_LIMITS.maxPenalty))
      add(path, `must be from -${TASK_LIMITS.maxPenalty} to ${TASK_LIMITS.maxPenalty} (got ${value})`);
  if (t.stop.length > TASK_LIMITS.maxStopStrings)
    add("text.stop", `must have at most ${TASK_LIMITS.maxStopStrings} strings (got ${t.stop.length})`);
  t.stop.forEach((s, i) => {
    if (s === "" || s.length > TASK_LIMITS.maxStopChars)
      add(`text.stop[${i}]`, `must be 1 to ${TASK_LIMITS.maxStopChars} characters (got ${describeValue(s)})`);
  });
  checkSeed(t.seed, "text.seed", add, TASK_LIMITS.maxTextSeed);
  if (t.thinking !== undefined && !hasMessages)
    add("text.thinking", "applies to chat messages only (a prompt is sent to the model as it is, without a chat template)");
  return issues;
}

function checkSeed(seed: bigint | undefined, path: string, add: (path: string, message: string) => void, max: bigint = TASK_LIMITS.maxSeed) {
  if (seed !== undefined && (seed < 0n || seed > max)) add(path, `must be from 0 to ${max} (got ${seed})`);
}

/** The settings an image job runs with: the model's cli defaults, each overridden by the task where set. */
export function effectiveCliSettings(
  defaults: ModelCliDefaults | undefined,
  overrides: ModelCliDefaults | undefined,
): Omit<ModelCliDefaults, "$typeName" | "$unknown"> {
  const pick = <K extends keyof ModelCliDefaults>(k: K) => overrides?.[k] ?? defaults?.[k];
  return {
    cfgScale: pick("cfgScale"),
    steps: pick("steps"),
    width: pick("width"),
    height: pick("height"),
    samplingMethod: pick("samplingMethod"),
  };
}

/** The media types an image job's outputs may have. */
export const IMAGE_OUTPUT_TYPES: ReadonlySet<string> = new Set(["image/png", "image/jpeg", "image/webp"]);
/** The media type of a text job's one output (its JSON envelope). */
export const TEXT_OUTPUT_TYPES: ReadonlySet<string> = new Set(["application/json"]);
const NO_OUTPUT_TYPES: ReadonlySet<string> = new Set();

/**
 * The media types a task's outputs may be uploaded with. The set is fixed per task kind: outputs
 * are served from the studio's origin, and a type chosen freely by a worker (text/html,
 * image/svg+xml) would run script there.
 */
export function outputMimeTypes(task: Task | undefined): ReadonlySet<string> {
  if (task?.kind.case === "image") return IMAGE_OUTPUT_TYPES;
  if (task?.kind.case === "text") return TEXT_OUTPUT_TYPES;
  return NO_OUTPUT_TYPES;
}

/** How many outputs a task asks for: an image task's batch count (0 means 1), one for text. */
export function expectedOutputCount(task: Task | undefined): number {
  if (task?.kind.case === "image") return Math.max(1, task.kind.value.batchCount);
  return 1;
}

/**
 * The words a person recognises a task by, for lists (web Jobs, `studio jobs list`): an image or text
 * task's prompt, else a chat's last user message (else its last message); "" when there are none.
 */
export function taskPrompt(task: Task | undefined): string {
  const kind = task?.kind;
  if (kind?.case === "image") return kind.value.prompt;
  if (kind?.case !== "text") return "";
  if (kind.value.prompt) return kind.value.prompt;
  const messages = kind.value.messages;
  return (messages.findLast((m) => m.role === "user") ?? messages.at(-1))?.content ?? "";
}

/** Text squeezed to one line of at most `max` characters, with an ellipsis where it was cut. */
export function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length <= max ? flat : `${flat.slice(0, Math.max(0, max - 1)).trimEnd()}…`;
}
