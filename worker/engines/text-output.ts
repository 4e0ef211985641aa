import type { EngineOutput } from "./types.js";

/** The mime type of a text job's single output. */
export const TEXT_OUTPUT_MIME = "application/json";

/**
 * The result of a text task. A text job has exactly one output, of mime `application/json`:
 * `{"text": "...", "finishReason": "stop" | "length" | ..., "usage": {"promptTokens": n, "completionTokens": n}}`.
 * JSON rather than text/plain so that clients get the finish reason and token usage with the text,
 * without a second output or a side channel.
 */
export interface TextResult {
  text: string;
  finishReason: string;
  usage: { promptTokens: number; completionTokens: number };
}

/** The one output of a text job. */
export function textOutput(result: TextResult): EngineOutput {
  const json = JSON.stringify({ text: result.text, finishReason: result.finishReason, usage: result.usage });
  return { mimeType: TEXT_OUTPUT_MIME, data: new TextEncoder().encode(json) };
}
