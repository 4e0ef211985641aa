import { describe, expect, test } from "bun:test";
import { OpenAiError } from "../../server/openai/openai-errors.js";
import { parseImageRequest } from "../../server/openai/image-request.js";
import { parseChatRequest, parseCompletionRequest } from "../../server/openai/text-request.js";

/** The 400 a parse throws: its param and message. */
function refusal(fn: () => unknown): { status: number; param: string | null; message: string; code: string | null } {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof OpenAiError)) throw err;
    return { status: err.status, param: err.param, message: err.message, code: err.code };
  }
  throw new Error("the request was accepted");
}

const chat = (extra: Record<string, unknown>) => ({ model: "m", messages: [{ role: "user", content: "hi" }], ...extra });

describe("chat requests", () => {
  test("map onto a chat TextTask: max_tokens, temperature, top_p, stop, seed, penalties", () => {
    const r = parseChatRequest(
      chat({
        messages: [
          { role: "developer", content: "be brief" },
          { role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] },
          { role: "assistant", content: null },
        ],
        max_tokens: 64,
        temperature: 0.5,
        top_p: 0.9,
        stop: "\n",
        seed: 7,
        frequency_penalty: 0.5,
        presence_penalty: -0.5,
        stream: true,
        stream_options: { include_usage: true },
        user: "someone",
        metadata: { ignored: true },
      }),
    );
    expect(r.stream).toBe(true);
    expect(r.includeUsage).toBe(true);
    const t = r.task.kind.case === "text" ? r.task.kind.value : undefined;
    expect(t?.messages.map((m) => [m.role, m.content])).toEqual([
      ["system", "be brief"],
      ["user", "a\nb"],
      ["assistant", ""],
    ]);
    expect([t?.maxTokens, t?.temperature, t?.topP, t?.stop, t?.seed, t?.frequencyPenalty, t?.presencePenalty]).toEqual([
      64,
      0.5,
      0.9,
      ["\n"],
      7n,
      0.5,
      -0.5,
    ]);
  });

  test("chat_template_kwargs.enable_thinking is the task's thinking; seeds are bounded as llama-server keeps them", () => {
    expect((parseChatRequest(chat({ chat_template_kwargs: { enable_thinking: false } })).task.kind.value as { thinking?: boolean }).thinking).toBe(false);
    expect((parseChatRequest(chat({})).task.kind.value as { thinking?: boolean }).thinking).toBeUndefined();
    expect(refusal(() => parseChatRequest(chat({ chat_template_kwargs: { enable_thinking: "no" } })))).toMatchObject({ param: "chat_template_kwargs.enable_thinking" });
    expect(refusal(() => parseChatRequest(chat({ chat_template_kwargs: { tools: 1 } })))).toMatchObject({ param: "chat_template_kwargs.tools" });
    expect(refusal(() => parseChatRequest(chat({ seed: 4294967295 })))).toMatchObject({ param: "seed" });
  });

  test("max_completion_tokens wins over max_tokens and is the parameter named when out of range; seed -1 means none", () => {
    const t = parseChatRequest(chat({ max_tokens: 10, max_completion_tokens: 20, seed: -1 })).task.kind.value as { maxTokens?: number; seed?: bigint };
    expect(t.maxTokens).toBe(20);
    expect(t.seed).toBeUndefined();
    expect(refusal(() => parseChatRequest(chat({ max_completion_tokens: 0 })))).toMatchObject({ status: 400, param: "max_completion_tokens" });
    expect(refusal(() => parseChatRequest(chat({ max_tokens: 0 })))).toMatchObject({ param: "max_tokens" });
  });

  test("a bad parameter is a 400 naming it", () => {
    expect(refusal(() => parseChatRequest({ messages: [] }))).toMatchObject({ status: 400, param: "model" });
    expect(refusal(() => parseChatRequest({ model: "m" }))).toMatchObject({ param: "messages" });
    expect(refusal(() => parseChatRequest(chat({ messages: [] })))).toMatchObject({ param: "messages" });
    expect(refusal(() => parseChatRequest(chat({ temperature: 9 })))).toMatchObject({ param: "temperature", message: "temperature: must be from 0 to 5 (got 9)" });
    expect(refusal(() => parseChatRequest(chat({ temperature: "hot" })))).toMatchObject({ param: "temperature" });
    expect(refusal(() => parseChatRequest(chat({ top_p: 1.5 })))).toMatchObject({ param: "top_p" });
    expect(refusal(() => parseChatRequest(chat({ seed: 1.5 })))).toMatchObject({ param: "seed" });
    expect(refusal(() => parseChatRequest(chat({ stop: ["a", ""] })))).toMatchObject({ param: "stop[1]" });
    expect(refusal(() => parseChatRequest(chat({ messages: [{ role: "tool", content: "x" }] })))).toMatchObject({ param: "messages[0].role" });
    expect(refusal(() => parseChatRequest(chat({ messages: [{ role: "user", content: [{ type: "image_url" }] }] })))).toMatchObject({
      param: "messages[0].content[0]",
    });
    expect(refusal(() => parseChatRequest(chat({ messages: [{ role: "user", content: "x".repeat(64_001) }] })))).toMatchObject({
      param: "messages[0].content",
    });
  });

  test("what cannot be honoured is refused by name, never ignored", () => {
    for (const [extra, param] of [
      [{ n: 2 }, "n"],
      [{ tools: [{ type: "function" }] }, "tools"],
      [{ tool_choice: "required" }, "tool_choice"],
      [{ logprobs: true }, "logprobs"],
      [{ response_format: { type: "json_object" } }, "response_format"],
      [{ logit_bias: { "42": 1 } }, "logit_bias"],
    ] as const)
      expect(refusal(() => parseChatRequest(chat(extra)))).toMatchObject({ status: 400, param, code: "unsupported_parameter" });
    // Their neutral values pass.
    expect(() => parseChatRequest(chat({ n: 1, tools: [], tool_choice: "none", logprobs: false, response_format: { type: "text" }, logit_bias: {} }))).not.toThrow();
  });
});

describe("completion requests", () => {
  test("a prompt (or a list of one) becomes a prompt TextTask", () => {
    const r = parseCompletionRequest({ model: "m", prompt: ["once"], max_tokens: 5, stop: ["."] });
    const t = r.task.kind.value as { prompt: string; maxTokens?: number; stop: string[] };
    expect([t.prompt, t.maxTokens, t.stop]).toEqual(["once", 5, ["."]]);
    expect(r.stream).toBe(false);
  });

  test("token ids, several prompts, echo, suffix and best_of are refused by name", () => {
    expect(refusal(() => parseCompletionRequest({ model: "m", prompt: [1, 2] }))).toMatchObject({ param: "prompt" });
    expect(refusal(() => parseCompletionRequest({ model: "m", prompt: ["a", "b"] }))).toMatchObject({ param: "prompt" });
    expect(refusal(() => parseCompletionRequest({ model: "m", prompt: "" }))).toMatchObject({ param: "prompt" });
    expect(refusal(() => parseCompletionRequest({ model: "m" }))).toMatchObject({ param: "prompt" });
    expect(refusal(() => parseCompletionRequest({ model: "m", prompt: "a", echo: true }))).toMatchObject({ param: "echo" });
    expect(refusal(() => parseCompletionRequest({ model: "m", prompt: "a", suffix: "z" }))).toMatchObject({ param: "suffix" });
    expect(refusal(() => parseCompletionRequest({ model: "m", prompt: "a", best_of: 3 }))).toMatchObject({ param: "best_of" });
  });
});

describe("image requests", () => {
  test("n, size and seed become batch_count, width/height overrides and the seed", () => {
    const r = parseImageRequest({ model: "m", prompt: "a fox", n: 3, size: "768x512", seed: 42, response_format: "b64_json", negative_prompt: "blur" });
    const t = r.task.kind.value as { prompt: string; batchCount: number; seed?: bigint; negativePrompt: string; overrides?: { width?: number; height?: number } };
    expect([t.prompt, t.batchCount, t.seed, t.negativePrompt, t.overrides?.width, t.overrides?.height]).toEqual(["a fox", 3, 42n, "blur", 768, 512]);
    expect(r.responseFormat).toBe("b64_json");
    const auto = parseImageRequest({ model: "m", prompt: "x", size: "auto" });
    expect(auto.responseFormat).toBe("url");
    expect((auto.task.kind.value as { overrides?: { width?: number } }).overrides?.width).toBeUndefined();
  });

  test("sizes must be multiples of 8 within the limits; other bad parameters are named", () => {
    expect(refusal(() => parseImageRequest({ model: "m", prompt: "x", size: "1000x1001" }))).toMatchObject({
      param: "size",
      message: "size: width and height must be multiples of 8 (got 1000x1001; the nearest is 1000x1000)",
    });
    expect(refusal(() => parseImageRequest({ model: "m", prompt: "x", size: "big" }))).toMatchObject({ param: "size" });
    expect(refusal(() => parseImageRequest({ model: "m", prompt: "x", size: "16384x512" }))).toMatchObject({ param: "size" });
    expect(refusal(() => parseImageRequest({ model: "m", prompt: "x", n: 17 }))).toMatchObject({ param: "n" });
    expect(refusal(() => parseImageRequest({ model: "m", prompt: "x", n: 0 }))).toMatchObject({ param: "n" });
    expect(refusal(() => parseImageRequest({ model: "m", prompt: "  " }))).toMatchObject({ param: "prompt" });
    expect(refusal(() => parseImageRequest({ model: "m", prompt: "x", response_format: "jpeg" }))).toMatchObject({ param: "response_format" });
    expect(refusal(() => parseImageRequest({ model: "m", prompt: "x", output_format: "webp" }))).toMatchObject({ param: "output_format" });
  });
});
