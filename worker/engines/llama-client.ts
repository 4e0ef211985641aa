import type { TextTask } from "../../gen/studio/v1/job_pb.js";
import { EngineError } from "./engine-error.js";
import { readSse } from "./sse.js";
import type { TextResult } from "./text-output.js";

/**
 * One streamed piece of a completion: answer text or reasoning, and the tokens of both so far.
 * llama-server sends one sampled token per event, so `tokens` counts events with content.
 */
export interface TextDelta {
  kind: "text" | "reasoning";
  content: string;
  tokens: number;
  reasoningTokens: number;
}

/** Called for each streamed piece, in order. */
export type DeltaListener = (delta: TextDelta) => void;

/** The request body for a text task: messages go to the OpenAI chat route, a prompt to /completion. */
export function llamaRequest(task: TextTask): { path: string; body: Record<string, unknown> } {
  const common: Record<string, unknown> = { stream: true };
  if (task.temperature !== undefined) common.temperature = task.temperature;
  if (task.topP !== undefined) common.top_p = task.topP;
  if (task.frequencyPenalty !== undefined) common.frequency_penalty = task.frequencyPenalty;
  if (task.presencePenalty !== undefined) common.presence_penalty = task.presencePenalty;
  if (task.stop.length > 0) common.stop = [...task.stop];
  // The contract bounds text seeds to llama-server's 32 bits (0..4294967294), so the number goes as it is.
  if (task.seed !== undefined) common.seed = Number(task.seed);
  if (task.messages.length > 0) {
    const body: Record<string, unknown> = {
      ...common,
      messages: task.messages.map((m) => ({ role: m.role, content: m.content })),
      stream_options: { include_usage: true },
    };
    // llama.cpp passes chat_template_kwargs to the template; enable_thinking is what Qwen3-style
    // templates read, and llama.cpp closes the <think> block itself for templates that open one.
    if (task.thinking !== undefined) body.chat_template_kwargs = { enable_thinking: task.thinking };
    if (task.maxTokens !== undefined) body.max_tokens = task.maxTokens;
    return { path: "/v1/chat/completions", body };
  }
  const body: Record<string, unknown> = { ...common, prompt: task.prompt };
  if (task.maxTokens !== undefined) body.n_predict = task.maxTokens;
  return { path: "/completion", body };
}

function errorMessage(value: unknown): string {
  if (value && typeof value === "object" && "error" in value) {
    const err = (value as { error: unknown }).error;
    if (err && typeof err === "object" && "message" in err) return String((err as { message: unknown }).message);
    return JSON.stringify(err);
  }
  if (value && typeof value === "object" && "message" in value) return String((value as { message: unknown }).message);
  return JSON.stringify(value);
}

function parseJson(data: string, route: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(data);
    if (value && typeof value === "object") return value as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new EngineError("failed", `llama-server sent an event on ${route} that is not a JSON object: ${data.slice(0, 120)}`);
}

const STOP_TYPES: Record<string, string> = { eos: "stop", word: "stop", limit: "length", none: "stop" };

/**
 * Streams one text task from a ready llama-server at `baseUrl` and returns the finished result:
 * the answer (`delta.content`) and, for thinking models, the reasoning (`delta.reasoning_content`,
 * llama.cpp's name for it), each piece passed to `onDelta` as it arrives.
 * Throws EngineError("failed") for an HTTP error or an error event mid-stream; an aborted `signal`
 * rejects with the signal's reason.
 */
export async function streamText(baseUrl: string, task: TextTask, signal: AbortSignal, onDelta: DeltaListener): Promise<TextResult> {
  const { path, body } = llamaRequest(task);
  const response = await fetch(`${baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
    // A new connection per request: llama-server closes the connection after a streamed answer
    // without saying so, and a pooled one reused for the next job was reset (ECONNRESET) before
    // its first byte, failing every other job on a warm server as a crash.
    keepalive: false,
  });
  if (!response.ok || !response.body) {
    const text = await response.text().catch(() => "");
    let message = text.slice(0, 300);
    try {
      message = errorMessage(JSON.parse(text));
    } catch {
      // keep the raw text
    }
    throw new EngineError("failed", `llama-server answered ${response.status} on ${path}: ${message}`, {
      retryable: response.status === 503,
    });
  }
  let text = "";
  let reasoning = "";
  let tokens = 0;
  let reasoningTokens = 0;
  const piece = (kind: TextDelta["kind"], content: string) => {
    tokens++;
    if (kind === "text") text += content;
    else {
      reasoning += content;
      reasoningTokens++;
    }
    onDelta({ kind, content, tokens, reasoningTokens });
  };
  let finishReason: string | undefined;
  let usage: TextResult["usage"] | undefined;
  let done = false;
  for await (const event of readSse(response.body)) {
    if (event.event === "error") throw new EngineError("failed", `llama-server reported an error mid-stream: ${errorMessage(safeJson(event.data))}`);
    if (event.data === "[DONE]") {
      done = true;
      break;
    }
    const chunk = parseJson(event.data, path);
    if ("error" in chunk) throw new EngineError("failed", `llama-server reported an error mid-stream: ${errorMessage(chunk)}`);
    if (path === "/completion") {
      const content = typeof chunk.content === "string" ? chunk.content : "";
      if (content !== "") piece("text", content);
      if (chunk.stop === true) {
        finishReason = stopReason(chunk);
        usage = {
          promptTokens: numberOr(chunk.tokens_evaluated, 0),
          completionTokens: numberOr(chunk.tokens_predicted, tokens),
        };
        done = true;
        break;
      }
      continue;
    }
    const choices = Array.isArray(chunk.choices) ? (chunk.choices as Record<string, unknown>[]) : [];
    const choice = choices[0];
    if (choice) {
      const delta = (choice.delta ?? {}) as Record<string, unknown>;
      if (typeof delta.reasoning_content === "string" && delta.reasoning_content !== "") piece("reasoning", delta.reasoning_content);
      if (typeof delta.content === "string" && delta.content !== "") piece("text", delta.content);
      if (typeof choice.finish_reason === "string") finishReason = choice.finish_reason;
    }
    if (chunk.usage && typeof chunk.usage === "object") {
      const u = chunk.usage as Record<string, unknown>;
      usage = { promptTokens: numberOr(u.prompt_tokens, 0), completionTokens: numberOr(u.completion_tokens, tokens) };
    }
  }
  if (!done) throw new EngineError("crashed", `llama-server's stream on ${path} ended before the completion finished`);
  return {
    text,
    ...(reasoning === "" ? {} : { reasoning }),
    finishReason: finishReason ?? "stop",
    usage: usage ?? { promptTokens: 0, completionTokens: tokens },
  };
}

function stopReason(chunk: Record<string, unknown>): string {
  if (typeof chunk.stop_type === "string") return STOP_TYPES[chunk.stop_type] ?? chunk.stop_type;
  if (chunk.stopped_limit === true) return "length";
  return "stop";
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

function safeJson(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return { message: data };
  }
}
