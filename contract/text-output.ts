import { z } from "zod";

/** The media type of a text job's one output. */
export const TEXT_OUTPUT_MIME = "application/json";

/**
 * The one output of a text job (JobOutput.mime_type application/json), as the worker writes it and
 * clients read it:
 *
 *     {"text": "...", "reasoning": "...", "finishReason": "stop", "usage": {"promptTokens": 12, "completionTokens": 34}}
 *
 * - `text`: the answer (llama-server's `content`).
 * - `reasoning`: a thinking model's reasoning (llama-server's `reasoning_content`: Qwen3, DeepSeek-R1
 *   and other templates that open a <think> block), kept apart from the answer; present only when
 *   the model reasoned.
 * - `finishReason`: "stop" (end of turn or a stop string) or "length" (max_tokens or the context ran out).
 * - `usage`: prompt tokens, and completion tokens counting the reasoning and the answer.
 *
 * JSON rather than text/plain, so that clients get the finish reason, the usage and the reasoning
 * with the text, without a second output or a side channel.
 */
export const TextOutputSchema = z.object({
  text: z.string(),
  reasoning: z.string().optional(),
  finishReason: z.string(),
  usage: z.object({ promptTokens: z.number().int().nonnegative(), completionTokens: z.number().int().nonnegative() }),
});
export type TextOutput = z.infer<typeof TextOutputSchema>;

/** The output's bytes; `reasoning` is left out when empty. */
export function encodeTextOutput(output: TextOutput): Uint8Array {
  const { text, reasoning, finishReason, usage } = output;
  const json = reasoning ? { text, reasoning, finishReason, usage } : { text, finishReason, usage };
  return new TextEncoder().encode(JSON.stringify(json));
}

/** Reads a text job's output bytes; throws a ZodError (or SyntaxError) naming what is wrong. */
export function decodeTextOutput(data: Uint8Array): TextOutput {
  return TextOutputSchema.parse(JSON.parse(new TextDecoder().decode(data)));
}
