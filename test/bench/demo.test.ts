import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
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

test("when its port is taken the demo says so and which port it took instead", async () => {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
  const taken = (holder.address() as AddressInfo).port;
  const out = mkdtempSync(join(tmpdir(), "demo-test-out-"));
  dirs.push(out);
  try {
    const proc = Bun.spawn([process.execPath, join(ROOT, "scripts", "demo.ts"), "--jobs", "1", "--exit-when-done", "--out", out], {
      cwd: ROOT,
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, STUDIO_PORT: String(taken) },
    });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    if (code !== 0) console.error(stdout, stderr);
    expect(code).toBe(0);
    const moved = /^note {4}port (\d+) on 127\.0\.0\.1 is already in use, so the demo took port (\d+) instead \(--port P picks one\)$/m.exec(stdout);
    expect(moved?.[1]).toBe(String(taken));
    expect(stdout).toContain(`studio  http://127.0.0.1:${moved![2]}`);
    expect(stdout).toContain("1 of 1 jobs succeeded");
  } finally {
    await new Promise((resolve) => holder.close(resolve));
  }
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
