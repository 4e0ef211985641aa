import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { applyDelta, canFollow, joinDeltas, splitDelta, utf8Length, type TextSoFar } from "../../contract/text-delta.js";
import { TextDeltaSchema, type TextDelta } from "../../gen/studio/v1/job_pb.js";

const piece = (fields: { text?: string; reasoning?: string; to?: number; ro?: number; attempt?: number; tokens?: number; jobId?: string }) =>
  create(TextDeltaSchema, {
    jobId: fields.jobId ?? "j",
    attempt: fields.attempt ?? 1,
    text: fields.text ?? "",
    reasoning: fields.reasoning ?? "",
    textOffset: BigInt(fields.to ?? 0),
    reasoningOffset: BigInt(fields.ro ?? 0),
    tokens: fields.tokens ?? 1,
  });

describe("text pieces", () => {
  test("utf8Length counts what UTF-8 takes, surrogate pairs as 4 and a lone surrogate as 3 (as encoders replace it)", () => {
    fc.assert(fc.property(fc.string({ unit: "binary" }), (s) => utf8Length(s) === Buffer.byteLength(s, "utf8")));
    expect(utf8Length("aé€😀")).toBe(1 + 2 + 3 + 4);
  });

  test("a piece follows another only when it continues it exactly and keeps reasoning before text", () => {
    const a = piece({ text: "hé", to: 0 });
    expect(canFollow(a, piece({ text: "llo", to: 3 }))).toBe(true);
    expect(canFollow(a, piece({ text: "llo", to: 2 }))).toBe(false);
    expect(canFollow(a, piece({ text: "llo", to: 3, attempt: 2 }))).toBe(false);
    expect(canFollow(a, piece({ text: "llo", to: 3, jobId: "k" }))).toBe(false);
    // Reasoning after text in one piece would put it before the text: refused.
    expect(canFollow(a, piece({ reasoning: "hmm", to: 3 }))).toBe(false);
    const r = piece({ reasoning: "think" });
    expect(canFollow(r, piece({ reasoning: "ing", ro: 5 }))).toBe(true);
    const joined = joinDeltas(r, piece({ text: "answer", ro: 5, tokens: 3 }));
    expect([joined.reasoning, joined.text, Number(joined.textOffset), Number(joined.reasoningOffset), joined.tokens]).toEqual(["think", "answer", 0, 0, 3]);
  });

  test("split pieces stay within the bound, keep order and offsets, and never cut a surrogate pair", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 300 }), fc.string({ unit: "grapheme", maxLength: 300 }), fc.integer({ min: 6, max: 120 }), (reasoning, text, max) => {
        const d = piece({ reasoning, text, to: 7, ro: 3 });
        const parts = splitDelta(d, max);
        let held: TextSoFar | undefined = { attempt: 1, text: "", reasoning: "", textBytes: 7, reasoningBytes: 3, tokens: 0 };
        for (const p of parts) {
          // A surrogate pair is never cut, so a bound of one code unit may carry two.
          if (parts.length > 1) expect(p.text.length + p.reasoning.length).toBeLessThanOrEqual(Math.max(2, Math.floor(max / 6)));
          expect(() => new TextEncoder().encode(p.text)).not.toThrow();
          const r = applyDelta(held, p);
          expect(r.result).toBe(p.text === "" && p.reasoning === "" ? "stale" : "applied");
          held = r.held;
        }
        expect(held!.text).toBe(text);
        expect(held!.reasoning).toBe(reasoning);
        for (const p of parts) expect(p.text.length === 0 || (p.text.charCodeAt(p.text.length - 1) & 0xfc00) !== 0xd800).toBe(true);
      }),
    );
  });

  test("a reader applies continuations, ignores repeats and older attempts, reports gaps, and restarts on a new attempt", () => {
    let held: TextSoFar | undefined;
    const apply = (d: TextDelta) => {
      const r = applyDelta(held, d);
      held = r.held;
      return r.result;
    };
    expect(apply(piece({ text: "ab" }))).toBe("applied");
    expect(apply(piece({ text: "ab" }))).toBe("stale");
    expect(apply(piece({ text: "cd", to: 2 }))).toBe("applied");
    expect(apply(piece({ text: "zz", to: 9 }))).toBe("gap");
    expect(held!.text).toBe("abcd");
    expect(apply(piece({ text: "new", attempt: 2 }))).toBe("applied");
    expect(held!.text).toBe("new");
    expect(apply(piece({ text: "old", to: 4, attempt: 1 }))).toBe("stale");
  });
});
