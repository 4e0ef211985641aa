import { expect, test } from "bun:test";
import { createServer } from "node:net";
import { ephemeralPortRange, freePort } from "../../../worker/engines/free-port.js";

async function bindable(port: number): Promise<boolean> {
  const server = createServer();
  const ok = await new Promise<boolean>((resolve) => {
    server.once("error", () => resolve(false));
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => resolve(true));
  });
  if (ok) await new Promise((resolve) => server.close(resolve));
  return ok;
}

test("reads the kernel's ephemeral range, and nothing from text that is not one", () => {
  expect(ephemeralPortRange("32768\t60999\n")).toEqual({ low: 32768, high: 60999 });
  expect(ephemeralPortRange("60999 32768")).toBeUndefined();
  expect(ephemeralPortRange("garbage")).toBeUndefined();
  // This machine's own range is readable (Linux).
  expect(ephemeralPortRange()).toBeDefined();
});

test("picks a bindable port below the ephemeral range, where no outgoing connection draws its local port", async () => {
  const range = ephemeralPortRange()!;
  const picks: number[] = [];
  for (let i = 0; i < 20; i++) picks.push(await freePort());
  for (const port of picks) {
    expect(port).toBeGreaterThanOrEqual(20_000);
    expect(port).toBeLessThan(range.low);
    expect(await bindable(port)).toBe(true);
  }
  // Children started together never share a pick.
  expect(new Set(picks).size).toBe(picks.length);
});

test("a port that is in use is never picked", async () => {
  // Two ports below the range, one held by us: the pick is the other one or, when that is busy too, one the OS chooses.
  const holder = createServer();
  await new Promise<void>((resolve, reject) => {
    holder.once("error", reject);
    holder.listen({ port: 20_000, host: "127.0.0.1", exclusive: true }, resolve);
  });
  try {
    const port = await freePort({ low: 20_002, high: 60_999 });
    expect(port).not.toBe(20_000);
    expect(await bindable(port)).toBe(true);
  } finally {
    await new Promise((resolve) => holder.close(resolve));
  }
});

test("where the range leaves no room below it, the OS picks", async () => {
  const port = await freePort({ low: 1025, high: 65535 });
  expect(await bindable(port)).toBe(true);
});
