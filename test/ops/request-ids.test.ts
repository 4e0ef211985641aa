import { describe, expect, test } from "bun:test";
import { requestIds } from "../../server/ops/request-log.js";

describe("request ids", () => {
  test("ids are distinct within a process, differ between generators, and fit the accepted header format", () => {
    const a = requestIds();
    const b = requestIds();
    const seen = new Set<string>();
    for (let i = 0; i < 10_000; i++) seen.add(a());
    expect(seen.size).toBe(10_000);
    const fromB = b();
    expect(seen.has(fromB)).toBe(false);
    for (const id of [...seen].slice(0, 100).concat(fromB)) expect(id).toMatch(/^[A-Za-z0-9._:-]{1,64}$/);
  });
});
