import { describe, expect, test } from "bun:test";
import { IllegalTransitionError, LLAMA_TRANSITIONS, nextLlamaState, type LlamaState } from "../../../worker/engines/index.js";

const STATES = Object.keys(LLAMA_TRANSITIONS) as LlamaState[];

/** The states reachable from `from` through allowed transitions. */
function reachable(from: LlamaState): Set<LlamaState> {
  const seen = new Set<LlamaState>([from]);
  for (const state of seen) for (const next of LLAMA_TRANSITIONS[state]) seen.add(next);
  return seen;
}

describe("llama-server state transitions", () => {
  test("every state can be reached from stopped, and stopped from every state (no state a server can get stuck in)", () => {
    expect(reachable("stopped")).toEqual(new Set(STATES));
    for (const state of STATES) expect(reachable(state).has("stopped")).toBe(true);
  });

  test("a process that exists can always end: every state but stopped goes to stopped directly or through stopping", () => {
    for (const state of STATES.filter((s) => s !== "stopped"))
      expect(LLAMA_TRANSITIONS[state].some((s) => s === "stopped" || s === "stopping")).toBe(true);
  });

  test("stopping only ends, and only a job (starting) leaves stopped: nothing starts a server behind a stop", () => {
    expect(LLAMA_TRANSITIONS.stopping).toEqual(["stopped"]);
    expect(LLAMA_TRANSITIONS.stopped).toEqual(["starting"]);
    expect(STATES.filter((s) => LLAMA_TRANSITIONS[s].includes("ready"))).toEqual(["starting"]);
  });

  test("nextLlamaState follows the table exactly: allowed moves return the new state, any other throws naming both", () => {
    for (const from of STATES)
      for (const to of STATES) {
        if (LLAMA_TRANSITIONS[from].includes(to)) expect(nextLlamaState(from, to)).toBe(to);
        else {
          const err = (() => {
            try {
              nextLlamaState(from, to);
            } catch (e) {
              return e;
            }
          })();
          expect(err).toBeInstanceOf(IllegalTransitionError);
          expect(err).toMatchObject({ code: "illegal_transition", from, to });
        }
      }
  });
});
