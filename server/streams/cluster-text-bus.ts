import { create } from "@bufbuild/protobuf";
import { z } from "zod";
import { TextDeltaSchema, type TextDelta } from "../../gen/studio/v1/job_pb.js";
import type { Logger } from "../log.js";
import { MAX_BROADCAST_BYTES, type Cluster } from "../storage/pg-cluster.js";
import { canFollow, joinDeltas, splitDelta } from "../../contract/text-delta.js";
import type { TextBus } from "./text-streams.js";

/** The cluster topic text pieces travel on. */
export const TEXT_TOPIC = "text";

/** Pieces waiting to go out past this are dropped (the database is slow or away): readers see a gap and fall back to the job's output. */
const MAX_WAITING = 10_000;

/** One piece on the wire, in short keys (a NOTIFY payload is small). */
const WirePiece = z.object({
  j: z.string().max(200),
  a: z.number().int().nonnegative(),
  to: z.number().int().nonnegative(),
  t: z.string(),
  ro: z.number().int().nonnegative(),
  r: z.string(),
  k: z.number().int().nonnegative(),
});
const WireBatch = z.object({ d: z.array(WirePiece).max(1000) });

const toWire = (d: TextDelta) => ({ j: d.jobId, a: d.attempt, to: Number(d.textOffset), t: d.text, ro: Number(d.reasoningOffset), r: d.reasoning, k: d.tokens });

/**
 * Text pieces between studio replicas on one PostgreSQL: the pieces this replica's workers send
 * go to the others over the cluster's notifications, so that an OpenAI client or a watcher on
 * any replica follows a job whose worker is connected to another. One broadcast is in flight at
 * a time (NOTIFYs from one connection arrive in order; from a pool they might not), and what
 * arrives meanwhile is joined into the next: under load a broadcast carries many tokens. A
 * broadcast that fails is dropped and logged; the pieces carry their offsets, so readers see
 * the gap and take the rest from the job's output.
 */
export class ClusterTextBus implements TextBus {
  #waiting: TextDelta[] = [];
  #sending: Promise<void> | undefined;
  #droppedWarned = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly logger: Logger,
  ) {}

  publish(delta: TextDelta): void {
    const last = this.#waiting.at(-1);
    if (last && canFollow(last, delta)) this.#waiting[this.#waiting.length - 1] = joinDeltas(last, delta);
    else if (this.#waiting.length >= MAX_WAITING) {
      if (!this.#droppedWarned) this.logger.warn({ waiting: this.#waiting.length }, "text pieces for the other replicas are dropped: notifications are not keeping up");
      this.#droppedWarned = true;
      return;
    } else this.#waiting.push(delta);
    this.#sending ??= this.#drain();
  }

  subscribe(listener: (delta: TextDelta) => void): () => void {
    return this.cluster.onBroadcast(TEXT_TOPIC, (body) => {
      const parsed = WireBatch.safeParse(body);
      if (!parsed.success) return this.logger.warn({ issues: parsed.error.issues.slice(0, 3) }, "a text broadcast from another replica did not parse");
      for (const p of parsed.data.d)
        listener(create(TextDeltaSchema, { jobId: p.j, attempt: p.a, textOffset: BigInt(p.to), text: p.t, reasoningOffset: BigInt(p.ro), reasoning: p.r, tokens: p.k }));
    });
  }

  /** Waits until what was published has gone out (or failed). */
  async close(): Promise<void> {
    while (this.#sending) await this.#sending;
  }

  async #drain(): Promise<void> {
    const limit = MAX_BROADCAST_BYTES - 100;
    const size = (w: ReturnType<typeof toWire>) => Buffer.byteLength(JSON.stringify(w)) + 1;
    try {
      while (this.#waiting.length > 0) {
        const pieces = splitDelta(this.#waiting.shift()!, limit - 200).map(toWire);
        if (pieces.length > 1) {
          // A piece too large for one broadcast goes in several, each alone.
          for (const w of pieces) await this.#send([w]);
          continue;
        }
        const batch = pieces;
        let bytes = size(batch[0]!);
        while (this.#waiting.length > 0) {
          const next = toWire(this.#waiting[0]!);
          const more = size(next);
          if (bytes + more > limit) break;
          batch.push(next);
          bytes += more;
          this.#waiting.shift();
        }
        await this.#send(batch);
      }
    } finally {
      this.#sending = undefined;
      this.#droppedWarned = false;
    }
  }

  async #send(batch: ReturnType<typeof toWire>[]): Promise<void> {
    try {
      await this.cluster.broadcast(TEXT_TOPIC, { d: batch });
    } catch (err) {
      this.logger.warn({ err, pieces: batch.length }, "could not send text pieces to the other replicas");
    }
  }
}
