import { describe, expect, test } from "bun:test";
import { IllegalTransitionError, LLAMA_TRANSITIONS, nextLlamaState, type LlamaState } from "../../../worker/engines/index.js";

const STATES: LlamaState[] = ["stopped", "starting", "ready", "stopping"];
const ALLOWED = new Set([
  "stopped>starting",
  "starting>ready",
  "starting>stopping",
  "starting>stopped",
  "ready>stopping",
  "ready>stopped",
  "stopping>stopped",
]);

describe("llama-server state transitions", () => {
  for (const from of STATES) {
    for (const to of STATES) {
      const legal = ALLOWED.has(`${from}>${to}`);
      test(`${from} -> ${to} is ${legal ? "allowed" : "an error"}`, () => {
        if (legal) expect(nextLlamaState(from, to)).toBe(to);
        else {
          expect(() => nextLlamaState(from, to)).toThrow(IllegalTransitionError);
          try {
            nextLlamaState(from, to);
          } catch (err) {
            expect((err as IllegalTransitionError).code).toBe("illegal_transition");
            expect((err as IllegalTransitionError).from).toBe(from);
          }
        }
      });
    }
  }

  test("the table lists exactly the allowed transitions", () => {
    const listed = Object.entries(LLAMA_TRANSITIONS).flatMap(([from, tos]) => tos.map((to) => `${from}>${to}`));
    expect(new Set(listed)).toEqual(ALLOWED);
  });
});
