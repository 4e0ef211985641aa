import { describe, expect, test } from "bun:test";
import { Outbox, SessionClosedError } from "../../../worker/session/outbox.js";

describe("Outbox", () => {
  test("yields messages in order and resolves send when the consumer takes each", async () => {
    const box = new Outbox<number>();
    const taken: number[] = [];
    const sends = [box.send(1), box.send(2)];
    box.post(3);
    const iter = box[Symbol.asyncIterator]();
    for (let i = 0; i < 3; i++) taken.push((await iter.next()).value as number);
    await Promise.all(sends);
    expect(taken).toEqual([1, 2, 3]);
  });

  test("send waits for the consumer (backpressure)", async () => {
    const box = new Outbox<string>();
    let resolved = false;
    const p = box.send("a").then(() => (resolved = true));
    await Promise.resolve();
    expect(resolved).toBe(false);
    await box[Symbol.asyncIterator]().next();
    await p;
    expect(resolved).toBe(true);
  });

  test("close drops what is queued, ends the iteration and refuses later sends", async () => {
    const box = new Outbox<string>();
    const queued = box.send("never taken");
    box.close();
    await expect(queued).rejects.toBeInstanceOf(SessionClosedError);
    await expect(box.send("late")).rejects.toBeInstanceOf(SessionClosedError);
    expect(box.post("late")).toBe(false);
    const seen: string[] = [];
    for await (const m of box) seen.push(m);
    expect(seen).toEqual([]);
  });

  test("a waiting consumer wakes when the box closes", async () => {
    const box = new Outbox<string>();
    const consumed = (async () => {
      const seen: string[] = [];
      for await (const m of box) seen.push(m);
      return seen;
    })();
    box.post("x");
    await new Promise((r) => setTimeout(r, 0));
    box.close();
    expect(await consumed).toEqual(["x"]);
  });
});
