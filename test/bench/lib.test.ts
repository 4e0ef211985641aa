import { expect, test } from "bun:test";
import * as net from "node:net";
import { freeLoopbackPort } from "../../bench/lib/free-port.js";
import { startStudioProcess } from "../../bench/lib/studio-process.js";
import { paddedPng, OUTPUT_BYTES } from "../../bench/lib/payload.js";
import { cpuSeconds, rssBytes } from "../../bench/lib/proc-stats.js";
import { figuresTable, goal, parseFigures, RESULT_PREFIX } from "../../bench/lib/report.js";
import { quantile, summarize } from "../../bench/lib/stats.js";
import { pngProblem } from "../../worker/engines/png.js";

test("quantile uses the nearest rank: never a value that was not measured", () => {
  const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
  expect(quantile(sorted, 0.5)).toBe(50);
  expect(quantile(sorted, 0.99)).toBe(99);
  expect(quantile(sorted, 1)).toBe(100);
  expect(quantile([7], 0.99)).toBe(7);
  expect(quantile([1, 2, 3], 0)).toBe(1);
  expect(Number.isNaN(quantile([], 0.5))).toBe(true);
});

test("summarize sorts its input and reports p50/p99/max/mean", () => {
  const s = summarize([5, 1, 4, 2, 3]);
  expect(s).toEqual({ count: 5, p50: 3, p90: 5, p99: 5, max: 5, mean: 3 });
});

test("the benchmark output is a valid PNG of exactly 1 KiB", () => {
  const png = paddedPng();
  expect(png.length).toBe(OUTPUT_BYTES);
  expect(pngProblem(png)).toBeUndefined();
  expect(() => paddedPng(40)).toThrow(RangeError);
});

test("/proc sampling reads this process's CPU time and RSS", () => {
  expect(cpuSeconds(process.pid)).toBeGreaterThan(0);
  expect(rssBytes(process.pid)).toBeGreaterThan(1024 * 1024);
});

test("figures survive the BENCH_RESULT line and make a README table with goals", () => {
  const figures = [
    { bench: "b", metric: "m", value: 1234.5, unit: "jobs/s", ...goal(">=", 1000, 1234.5) },
    { bench: "b", metric: "n", value: 12, unit: "ms", ...goal("<", 10, 12) },
  ];
  const out = `noise\n${RESULT_PREFIX}${JSON.stringify({ bench: "b", figures })}\nmore noise\n`;
  expect(parseFigures(out)).toEqual([{ bench: "b", figures }]);
  const table = figuresTable(figures);
  expect(table).toContain("| b | m | 1,235 jobs/s | >= 1000 jobs/s | yes |");
  expect(table).toContain("| b | n | 12 ms | < 10 ms | **no** |");
});

test("a studio whose picked port was taken before it bound is started again on another pick", async () => {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
  const taken = (holder.address() as net.AddressInfo).port;
  const picks = [taken];
  const studio = await startStudioProcess({ logLevel: "warn", pickPort: async () => picks.shift() ?? freeLoopbackPort() });
  try {
    expect(studio.url).not.toBe(`http://127.0.0.1:${taken}`);
    expect((await fetch(`${studio.url}/healthz`)).status).toBe(200);
  } finally {
    await studio.stop();
    holder.close();
  }
}, 30_000);
