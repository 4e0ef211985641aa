import { create } from "@bufbuild/protobuf";
import { canFollow, joinDeltas, utf8Length } from "../../contract/text-delta.js";
import { TextDeltaSchema } from "../../gen/studio/v1/job_pb.js";
import { JobTextDeltaSchema } from "../../gen/studio/v1/worker_service_pb.js";
import type { TextPiece } from "../engines/types.js";
import type { SessionSource } from "./ports.js";

/**
 * Sends a text job's pieces to the studio as its engine produces them (JobTextDelta). Pieces
 * that come in the same turn of the event loop (the events of one read of llama-server's stream)
 * leave as one message at the end of that turn, and a message still waiting in the session's
 * queue takes the next pieces in: tokens that come close together share a message, and a slow
 * link carries more per message instead of falling behind. The first piece goes out at the end
 * of its own turn, so nothing waits on a timer. Offsets count UTF-8 bytes of the attempt's text.
 */
export class TextRelay {
  #text = "";
  #reasoning = "";
  #tokens = 0;
  /** Offsets of what is buffered (what was sent before it). */
  #textOffset = 0;
  #reasoningOffset = 0;
  #scheduled: ReturnType<typeof setImmediate> | undefined;

  constructor(
    private readonly ids: { jobId: string; leaseId: string; attempt: number },
    private readonly sessions: SessionSource,
  ) {}

  push(piece: TextPiece): void {
    if (piece.content === "") return;
    // Reasoning after text would be reordered inside one message: send what is buffered first.
    if (piece.kind === "reasoning" && this.#text !== "") this.flush();
    if (piece.kind === "text") this.#text += piece.content;
    else this.#reasoning += piece.content;
    this.#tokens = Math.max(this.#tokens, piece.tokens);
    this.#scheduled ??= setImmediate(() => this.flush());
  }

  /** Sends what is buffered now (before the job's outputs, so that the pieces arrive first). */
  flush(): void {
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    if (this.#text === "" && this.#reasoning === "") return;
    const delta = create(TextDeltaSchema, {
      jobId: this.ids.jobId,
      attempt: this.ids.attempt,
      textOffset: BigInt(this.#textOffset),
      text: this.#text,
      reasoningOffset: BigInt(this.#reasoningOffset),
      reasoning: this.#reasoning,
      tokens: this.#tokens,
    });
    this.#textOffset += utf8Length(this.#text);
    this.#reasoningOffset += utf8Length(this.#reasoning);
    this.#text = "";
    this.#reasoning = "";
    const message = create(JobTextDeltaSchema, { jobId: this.ids.jobId, leaseId: this.ids.leaseId, delta });
    // No session now (a reconnect): the piece is lost; the studio's readers see the gap in the
    // offsets and take the rest from the outputs.
    this.sessions.session?.postOrMerge({ case: "textDelta", value: message }, (waiting) => {
      if (waiting.case !== "textDelta" || waiting.value.leaseId !== this.ids.leaseId || !waiting.value.delta) return false;
      if (!canFollow(waiting.value.delta, delta)) return false;
      waiting.value.delta = joinDeltas(waiting.value.delta, delta);
      return true;
    });
  }

  /** Drops what is buffered (the job stopped). */
  stop(): void {
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
  }
}
