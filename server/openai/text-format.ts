/** What a text job produced, as its output says (contract text output: text, reasoning, finishReason, usage). */
export interface TextResult {
  text: string;
  reasoning?: string;
  finishReason: string;
  usage: { promptTokens: number; completionTokens: number };
}

/** OpenAI's usage object. */
export function usageOf(result: TextResult) {
  const { promptTokens, completionTokens } = result.usage;
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** The finish reasons OpenAI's clients know; llama-server's are among them, anything else reads as "stop". */
function finishReason(reason: string): string {
  return reason === "length" || reason === "stop" || reason === "content_filter" ? reason : "stop";
}

/**
 * The chunks of one streamed answer, in OpenAI's shapes for the chat API (`chat.completion.chunk`,
 * `delta.content`, `delta.reasoning_content` as llama-server and DeepSeek send a model's reasoning)
 * or the legacy completions API (`text_completion`, `choices[].text`). The fixed part of each
 * chunk is built once; a piece of text costs one JSON string escape.
 */
export class ChunkFormat {
  readonly #head: string;
  readonly #chat: boolean;
  readonly #usageNull: string;

  constructor(kind: "chat" | "completion", id: string, model: string, created: number, includeUsage: boolean) {
    this.#chat = kind === "chat";
    const object = this.#chat ? "chat.completion.chunk" : "text_completion";
    this.#head = `{"id":${JSON.stringify(id)},"object":"${object}","created":${created},"model":${JSON.stringify(model)},"system_fingerprint":null`;
    // With include_usage, OpenAI sends "usage": null on every chunk but the last.
    this.#usageNull = includeUsage ? `,"usage":null` : "";
  }

  /** The first chunk of a chat stream: the assistant's role, no text yet. */
  role(): string | undefined {
    if (!this.#chat) return undefined;
    return `${this.#head},"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]${this.#usageNull}}`;
  }

  /** A piece of the answer. */
  text(content: string): string {
    const piece = JSON.stringify(content);
    if (this.#chat) return `${this.#head},"choices":[{"index":0,"delta":{"content":${piece}},"logprobs":null,"finish_reason":null}]${this.#usageNull}}`;
    return `${this.#head},"choices":[{"index":0,"text":${piece},"logprobs":null,"finish_reason":null}]${this.#usageNull}}`;
  }

  /** A piece of the reasoning (chat only: the completions API has no place for it, so it is left out there). */
  reasoning(content: string): string | undefined {
    if (!this.#chat) return undefined;
    return `${this.#head},"choices":[{"index":0,"delta":{"reasoning_content":${JSON.stringify(content)}},"logprobs":null,"finish_reason":null}]${this.#usageNull}}`;
  }

  /** The chunk that closes the choice. */
  finish(reason: string): string {
    const why = JSON.stringify(finishReason(reason));
    if (this.#chat) return `${this.#head},"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":${why}}]${this.#usageNull}}`;
    return `${this.#head},"choices":[{"index":0,"text":"","logprobs":null,"finish_reason":${why}}]${this.#usageNull}}`;
  }

  /** The last chunk with include_usage: no choices, the usage. */
  usage(result: TextResult): string {
    return `${this.#head},"choices":[],"usage":${JSON.stringify(usageOf(result))}}`;
  }
}

/** The whole answer of a request without `stream`. */
export function textResponse(kind: "chat" | "completion", id: string, model: string, created: number, result: TextResult) {
  const reason = finishReason(result.finishReason);
  if (kind === "chat") {
    const message: Record<string, unknown> = { role: "assistant", content: result.text };
    if (result.reasoning) message.reasoning_content = result.reasoning;
    return {
      id,
      object: "chat.completion",
      created,
      model,
      system_fingerprint: null,
      choices: [{ index: 0, message, logprobs: null, finish_reason: reason }],
      usage: usageOf(result),
    };
  }
  return {
    id,
    object: "text_completion",
    created,
    model,
    system_fingerprint: null,
    choices: [{ index: 0, text: result.text, logprobs: null, finish_reason: reason }],
    usage: usageOf(result),
  };
}
