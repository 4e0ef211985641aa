import { create } from "@bufbuild/protobuf";
import { TextDeltaSchema, type TextDelta } from "../gen/studio/v1/job_pb.js";

/**
 * The rules of a text job's streamed pieces (TextDelta), shared by the worker that sends them, the
 * studio that relays them and the clients that show them: offsets are UTF-8 bytes of what came
 * before in the same attempt; within one piece the reasoning comes before the text.
 */

/** UTF-8 bytes of a string, without encoding it (and without Buffer, which browsers lack). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Whether `b` continues `a` exactly, so that the two can travel as one piece without reordering anything. */
export function canFollow(a: TextDelta, b: TextDelta): boolean {
  return (
    a.jobId === b.jobId &&
    a.attempt === b.attempt &&
    Number(a.textOffset) + utf8Length(a.text) === Number(b.textOffset) &&
    Number(a.reasoningOffset) + utf8Length(a.reasoning) === Number(b.reasoningOffset) &&
    // One piece holds reasoning then text: reasoning after text would be reordered.
    (b.reasoning === "" || a.text === "")
  );
}

/** `a` and `b` (which canFollow) as one piece. */
export function joinDeltas(a: TextDelta, b: TextDelta): TextDelta {
  return create(TextDeltaSchema, {
    jobId: a.jobId,
    attempt: a.attempt,
    textOffset: a.textOffset,
    text: a.text + b.text,
    reasoningOffset: a.reasoningOffset,
    reasoning: a.reasoning + b.reasoning,
    tokens: Math.max(a.tokens, b.tokens),
  });
}

/** Cuts text into parts of at most maxChars code units, never between the halves of a surrogate pair. */
function cut(text: string, maxChars: number): string[] {
  const parts: string[] = [];
  for (let i = 0; i < text.length; ) {
    let end = Math.min(text.length, i + maxChars);
    // Never between the halves of a pair: one code unit less, or (a bound of 1) the whole pair.
    if (end < text.length && (text.charCodeAt(end - 1) & 0xfc00) === 0xd800) end = end - 1 > i ? end - 1 : end + 1;
    parts.push(text.slice(i, end));
    i = end;
  }
  return parts;
}

/**
 * A piece as several whose text and reasoning each stay within maxBytes once JSON-escaped (at
 * most 6 bytes a code unit), in order, with their offsets: for carriers that bound a message.
 */
export function splitDelta(d: TextDelta, maxBytes: number): TextDelta[] {
  const maxChars = Math.max(1, Math.floor(maxBytes / 6));
  if (d.text.length + d.reasoning.length <= maxChars) return [d];
  const out: TextDelta[] = [];
  let textOffset = Number(d.textOffset);
  let reasoningOffset = Number(d.reasoningOffset);
  for (const part of cut(d.reasoning, maxChars)) {
    out.push(create(TextDeltaSchema, { jobId: d.jobId, attempt: d.attempt, textOffset: BigInt(textOffset), reasoningOffset: BigInt(reasoningOffset), reasoning: part, tokens: d.tokens }));
    reasoningOffset += utf8Length(part);
  }
  for (const part of cut(d.text, maxChars)) {
    out.push(create(TextDeltaSchema, { jobId: d.jobId, attempt: d.attempt, textOffset: BigInt(textOffset), reasoningOffset: BigInt(reasoningOffset), text: part, tokens: d.tokens }));
    textOffset += utf8Length(part);
  }
  return out;
}

/** A job's text as a reader has put it together from its pieces. */
export interface TextSoFar {
  attempt: number;
  text: string;
  reasoning: string;
  /** UTF-8 bytes of text and reasoning held. */
  textBytes: number;
  reasoningBytes: number;
  tokens: number;
}

/**
 * Adds a piece to what a reader holds: "applied" (it continued the text; a new attempt starts
 * from nothing), "stale" (an older attempt, or text already held: nothing changed) or "gap" (it
 * starts past what is held: a piece was lost, so the reader should read the job again).
 */
export function applyDelta(held: TextSoFar | undefined, d: TextDelta): { held: TextSoFar | undefined; result: "applied" | "stale" | "gap" } {
  const textOffset = Number(d.textOffset);
  const reasoningOffset = Number(d.reasoningOffset);
  let base = held;
  if (!base || d.attempt > base.attempt) base = { attempt: d.attempt, text: "", reasoning: "", textBytes: 0, reasoningBytes: 0, tokens: 0 };
  else if (d.attempt < base.attempt) return { held, result: "stale" };
  const textEnd = textOffset + utf8Length(d.text);
  const reasoningEnd = reasoningOffset + utf8Length(d.reasoning);
  if (textEnd <= base.textBytes && reasoningEnd <= base.reasoningBytes) return { held, result: "stale" };
  // Anything but an exact continuation (past what is held, or overlapping a snapshot taken mid-piece).
  if (textOffset !== base.textBytes || reasoningOffset !== base.reasoningBytes) return { held, result: "gap" };
  return {
    held: {
      attempt: base.attempt,
      text: base.text + d.text,
      reasoning: base.reasoning + d.reasoning,
      textBytes: textEnd,
      reasoningBytes: reasoningEnd,
      tokens: Math.max(base.tokens, d.tokens),
    },
    result: "applied",
  };
}
