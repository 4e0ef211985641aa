import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pngProblem } from "../../worker/engines/png.js";

const ROOT = join(import.meta.dir, "..", "..");
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

test("bun run demo runs jobs through a real studio and worker, writes PNGs and cleans up its database", async () => {
  const out = mkdtempSync(join(tmpdir(), "demo-test-out-"));
  dirs.push(out);
  const proc = Bun.spawn(
    [process.execPath, join(ROOT, "scripts", "demo.ts"), "--jobs", "3", "--exit-when-done", "--port", "0", "--out", out],
    { cwd: ROOT, stdout: "pipe", stderr: "pipe" },
  );
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) console.error(stdout, stderr);
  expect(code).toBe(0);
  expect(stdout).toContain("3 of 3 jobs succeeded");
  expect(stdout).toMatch(/web page {2}http:\/\/127\.0\.0\.1:\d+\//);

  const pngs = readdirSync(out).filter((f) => f.endsWith(".png"));
  expect(pngs).toHaveLength(3);
  for (const f of pngs) expect(pngProblem(new Uint8Array(readFileSync(join(out, f))))).toBeUndefined();

  const db = /temporary database in (\S+)\)/.exec(stdout)?.[1];
  expect(db).toBeDefined();
  expect(existsSync(db!)).toBe(false);
}, 60_000);

test.each([
  [["--jobs", "0"], "--jobs must be a whole number from 1 to 100"],
  [["--port", "http"], "--port must be a port number from 0 to 65535"],
])("the demo refuses %p with a clear message", async (args, message) => {
  const proc = Bun.spawn([process.execPath, join(ROOT, "scripts", "demo.ts"), ...args], { stdout: "pipe", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  expect(code).toBe(2);
  expect(stderr).toContain(message);
});
