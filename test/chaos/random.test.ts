import { describe, expect, test } from "bun:test";
import { SeededRandom, chaosSeed } from "./random.js";

describe("the chaos run's seeded randomness", () => {
  test("one seed gives one sequence; forks are independent streams", () => {
    const draw = (r: SeededRandom) => Array.from({ length: 8 }, () => r.next());
    expect(draw(new SeededRandom(42))).toEqual(draw(new SeededRandom(42)));
    expect(draw(new SeededRandom(42))).not.toEqual(draw(new SeededRandom(43)));
    const root = new SeededRandom(7);
    expect(draw(root.fork(1))).toEqual(draw(new SeededRandom(7).fork(1)));
    expect(draw(root.fork(1))).not.toEqual(draw(root.fork(2)));
    for (const x of draw(new SeededRandom(0))) expect(x >= 0 && x < 1).toBe(true);
  });

  test("pick and between stay in range", () => {
    const r = new SeededRandom(3);
    for (let i = 0; i < 1000; i++) {
      expect(["a", "b", "c"]).toContain(r.pick(["a", "b", "c"])!);
      const x = r.between(1500, 3500);
      expect(x >= 1500 && x < 3500).toBe(true);
    }
    expect(r.pick([])).toBeUndefined();
  });

  test("a seed is read from text, or made when none is given", () => {
    expect(chaosSeed("12345", "CHAOS_SEED")).toBe(12345);
    expect(Number.isInteger(chaosSeed(undefined, "CHAOS_SEED"))).toBe(true);
    expect(Number.isInteger(chaosSeed("", "CHAOS_SEED"))).toBe(true);
    expect(() => chaosSeed("-1", "CHAOS_SEED")).toThrow('CHAOS_SEED: a seed is an integer 0..4294967295, not "-1"');
    expect(() => chaosSeed("4294967296", "--seed")).toThrow("--seed: a seed is an integer");
  });
});
