import { create } from "@bufbuild/protobuf";
import { canFollow, joinDeltas, utf8Length } from "../../contract/text-delta.js";
import { TextDeltaSchema } from "../../gen/studio/v1/job_pb.js";
import { JobTextDeltaSchema } from "../../gen/studio/v1/worker_service_pb.js";
import type { TextPiece } from "../engines/types.js";
import type { SessionSource } from "./ports.js";

/**
 * Sends a text job's pieces to the studio as its engine produces them (JobTextDelta). A piece
 * goes out at once unless the message before it is still waiting in the session's queue: then it
 * joins that message. The stream takes a queued message on its next turn, so the tokens of one
 * read of llama-server's stream share a message, and a slow link carries more tokens per message
 * instead of falling behind; the first token never waits. Offsets count UTF-8 bytes of the
 * attempt's text and reasoning.
 */
export class TextRelay {
  #textOffset = 0;
  #reasoningOffset = 0;

  constructor(
    private readonly ids: { jobId: string; leaseId: string; attempt: number },
    private readonly sessions: SessionSource,
  ) {}

  push(piece: TextPiece): void {
    if (piece.content === "") return;
    const reasoning = piece.kind === "reasoning";
    const delta = create(TextDeltaSchema, {
      jobId: this.ids.jobId,
      attempt: this.ids.attempt,
      textOffset: BigInt(this.#textOffset),
      reasoningOffset: BigInt(this.#reasoningOffset),
      tokens: piece.tokens,
      ...(reasoning ? { reasoning: piece.content } : { text: piece.content }),
    });
    if (reasoning) this.#reasoningOffset += utf8Length(piece.content);
    else this.#textOffset += utf8Length(piece.content);
    const message = create(JobTextDeltaSchema, { jobId: this.ids.jobId, leaseId: this.ids.leaseId, delta });
    // No session now (a reconnect): the piece is lost; the studio's readers see the gap in the
    // offsets and take the rest from the outputs.
    this.sessions.session?.postOrMerge({ case: "textDelta", value: message }, (waiting) => {
      if (waiting.case !== "textDelta" || waiting.value.leaseId !== this.ids.leaseId || !waiting.value.delta) return false;
      // Only an exact continuation joins (reasoning after text would be reordered inside one message).
      if (!canFollow(waiting.value.delta, delta)) return false;
      waiting.value.delta = joinDeltas(waiting.value.delta, delta);
      return true;
    });
  }
}
