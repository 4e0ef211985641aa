import { describe, expect, test } from "bun:test";
import { Backoff } from "../../contract/backoff.js";

describe("Backoff", () => {
  test("the ceiling doubles from the initial delay up to the cap", () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999 });
    const delays = Array.from({ length: 7 }, () => b.next());
    expect(delays).toEqual([99, 199, 399, 799, 999, 999, 999]);
    expect(b.attempts).toBe(7);
  });

  test("full jitter: the delay is a random share of the ceiling, never below a tenth of the initial delay", () => {
    const values = [0, 0.5, 0.25];
    const b = new Backoff({ initialMs: 200, maxMs: 10_000, random: () => values.shift()! });
    expect(b.next()).toBe(20);
    expect(b.next()).toBe(200);
    expect(b.next()).toBe(200);
  });

  test("reset starts again from the initial delay", () => {
    const b = new Backoff({ initialMs: 100, maxMs: 5000, random: () => 0.999 });
    b.next();
    b.next();
    b.next();
    expect(b.ceiling()).toBe(800);
    b.reset();
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(99);
  });

  test("different workers spread out (jitter from a real random source)", () => {
    const firsts = new Set(Array.from({ length: 20 }, () => new Backoff({ initialMs: 1000 }).next()));
    expect(firsts.size).toBeGreaterThan(10);
  });

  test("bad settings are refused", () => {
    expect(() => new Backoff({ initialMs: -1 })).toThrow(RangeError);
    expect(() => new Backoff({ initialMs: 100, maxMs: 50 })).toThrow(/maxMs 50/);
    expect(() => new Backoff({ factor: 0.5 })).toThrow(/factor/);
  });

  test("no initial delay (tests of retries): every delay is 0", () => {
    const b = new Backoff({ initialMs: 0 });
    expect([b.next(), b.next(), b.next()]).toEqual([0, 0, 0]);
  });
});
