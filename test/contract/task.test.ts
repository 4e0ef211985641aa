import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { TaskSchema, type Task } from "../../gen/studio/v1/job_pb.js";
import { ModelCliDefaultsSchema } from "../../gen/studio/v1/model_pb.js";
import { TASK_LIMITS, effectiveCliSettings, expectedOutputCount, taskIssues } from "../../contract/index.js";

const image = (value: Record<string, unknown>): Task =>
  create(TaskSchema, { kind: { case: "image", value: { prompt: "a cat", ...value } } });
const text = (value: Record<string, unknown>): Task => create(TaskSchema, { kind: { case: "text", value } });
const paths = (task: Task | undefined) => taskIssues(task).map((i) => i.path);

describe("task rules", () => {
  test("valid image and text tasks have no issues", () => {
    expect(taskIssues(image({ seed: 42n, batchCount: 4 }))).toEqual([]);
    expect(taskIssues(text({ prompt: "hi", maxTokens: 64, temperature: 0.7, stop: ["\n"] }))).toEqual([]);
    expect(taskIssues(text({ messages: [{ role: "user", content: "hi" }] }))).toEqual([]);
  });

  test("a task must say what it is", () => {
    expect(taskIssues(undefined)).toEqual([{ path: "task", message: "must set image or text" }]);
    expect(taskIssues(create(TaskSchema, {}))).toEqual([{ path: "task", message: "must set image or text" }]);
  });

  test("image prompt: present and bounded", () => {
    expect(taskIssues(image({ prompt: "  " }))).toEqual([{ path: "task.image.prompt", message: "must not be empty" }]);
    const long = "x".repeat(TASK_LIMITS.maxPromptChars + 1);
    expect(taskIssues(image({ prompt: long }))[0]!.message).toContain(`(got ${long.length})`);
    expect(paths(image({ negativePrompt: long }))).toEqual(["task.image.negative_prompt"]);
  });

  test("batch count and seed are bounded", () => {
    expect(paths(image({ batchCount: TASK_LIMITS.maxBatchCount + 1 }))).toEqual(["task.image.batch_count"]);
    expect(paths(image({ seed: -1n }))).toEqual(["task.image.seed"]);
    expect(paths(image({ seed: 2n ** 60n }))).toEqual(["task.image.seed"]);
    expect(paths(image({ seed: 4_294_967_301n }))).toEqual([]);
  });

  test("text seeds stop where llama-server's 32 bits do: 4294967295 is its 'random' and 4294967301 would sample as 5", () => {
    expect(paths(text({ prompt: "hi", seed: 0n }))).toEqual([]);
    expect(paths(text({ prompt: "hi", seed: 4_294_967_294n }))).toEqual([]);
    expect(taskIssues(text({ prompt: "hi", seed: 4_294_967_295n }))).toEqual([
      { path: "task.text.seed", message: "must be from 0 to 4294967294 (got 4294967295)" },
    ]);
    expect(paths(text({ prompt: "hi", seed: 4_294_967_301n }))).toEqual(["task.text.seed"]);
    expect(paths(text({ prompt: "hi", seed: -1n }))).toEqual(["task.text.seed"]);
  });

  test("thinking is for chat messages: a raw prompt has no chat template to ask", () => {
    expect(paths(text({ messages: [{ role: "user", content: "hi" }], thinking: false }))).toEqual([]);
    expect(paths(text({ messages: [{ role: "user", content: "hi" }], thinking: true }))).toEqual([]);
    expect(paths(text({ prompt: "hi", thinking: false }))).toEqual(["task.text.thinking"]);
  });

  test("overrides obey the cli defaults rules", () => {
    const issues = taskIssues(image({ overrides: { steps: 0, width: 100, samplingMethod: "bogus" } }));
    expect(issues.map((i) => i.path)).toEqual([
      "task.image.overrides.steps",
      "task.image.overrides.width",
      "task.image.overrides.samplingMethod",
    ]);
    expect(issues[1]!.message).toBe("must be a multiple of 8 (got 100)");
  });

  test("text: exactly one of prompt and messages", () => {
    expect(paths(text({}))).toEqual(["task.text"]);
    expect(paths(text({ prompt: "a", messages: [{ role: "user", content: "b" }] }))).toEqual(["task.text"]);
  });

  test("text: roles, counts and sizes are bounded", () => {
    expect(taskIssues(text({ messages: [{ role: "robot", content: "x" }] }))).toEqual([
      { path: "task.text.messages[0].role", message: 'must be system, user or assistant (got "robot")' },
    ]);
    const many = Array.from({ length: TASK_LIMITS.maxMessages + 1 }, () => ({ role: "user", content: "x" }));
    expect(paths(text({ messages: many }))).toEqual(["task.text.messages"]);
    const big = "y".repeat(TASK_LIMITS.maxMessageChars);
    const total = Array.from({ length: 5 }, () => ({ role: "user", content: big }));
    expect(paths(text({ messages: total }))).toEqual(["task.text"]);
    expect(paths(text({ prompt: "a", maxTokens: 0 }))).toEqual(["task.text.max_tokens"]);
    expect(paths(text({ prompt: "a", maxTokens: TASK_LIMITS.maxTokens + 1 }))).toEqual(["task.text.max_tokens"]);
    expect(paths(text({ prompt: "a", temperature: Number.NaN }))).toEqual(["task.text.temperature"]);
    expect(paths(text({ prompt: "a", temperature: 9 }))).toEqual(["task.text.temperature"]);
    expect(paths(text({ prompt: "a", topP: 1.5 }))).toEqual(["task.text.top_p"]);
    expect(paths(text({ prompt: "a", topP: -0.1 }))).toEqual(["task.text.top_p"]);
    expect(paths(text({ prompt: "a", topP: 0, frequencyPenalty: -2, presencePenalty: 2 }))).toEqual([]);
    expect(paths(text({ prompt: "a", frequencyPenalty: 2.5, presencePenalty: Number.NaN }))).toEqual([
      "task.text.frequency_penalty",
      "task.text.presence_penalty",
    ]);
    expect(paths(text({ prompt: "a", stop: [""] }))).toEqual(["task.text.stop[0]"]);
    expect(paths(text({ prompt: "a", stop: Array(17).fill("s") }))).toEqual(["task.text.stop"]);
  });
});

describe("task helpers", () => {
  test("overrides win over the model's defaults, field by field", () => {
    const defaults = create(ModelCliDefaultsSchema, { cfgScale: 1, steps: 8, width: 1024, height: 1024, samplingMethod: "euler" });
    const overrides = create(ModelCliDefaultsSchema, { steps: 20, width: 512 });
    expect(effectiveCliSettings(defaults, overrides)).toEqual({
      cfgScale: 1,
      steps: 20,
      width: 512,
      height: 1024,
      samplingMethod: "euler",
    });
    expect(effectiveCliSettings(undefined, undefined).steps).toBeUndefined();
  });

  test("expected outputs: the batch count (0 means 1), one for text", () => {
    expect(expectedOutputCount(image({ batchCount: 0 }))).toBe(1);
    expect(expectedOutputCount(image({ batchCount: 3 }))).toBe(3);
    expect(expectedOutputCount(text({ prompt: "a" }))).toBe(1);
  });
});
