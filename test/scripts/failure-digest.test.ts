import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const REPO = join(import.meta.dir, "..", "..");
const dir = mkdtempSync(join(tmpdir(), "failure-digest-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// CI shows only the end of the run: the digest repeats each failed test with what bun printed for it.
test("the failure digest repeats what each failed test printed, from real bun test output", () => {
  mkdirSync(join(dir, "test"));
  writeFileSync(
    join(dir, "test", "sample.test.ts"),
    [
      'import { expect, test } from "bun:test";',
      'test("quiet and fine", () => { console.log(["passing", "says"].join("-")); });',
      'test("loud and broken", () => { console.log(["failing", "says"].join("-")); expect(1).toBe(2); });',
      'test("fine after", () => {});',
    ].join("\n"),
  );
  // As scripts/test.sh runs it: the test's own output and bun's report interleaved in one log.
  const log = join(dir, "run.log");
  const run = Bun.spawnSync(["bash", "-c", `"$0" test > run.log 2>&1`, process.execPath], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  expect(run.exitCode).toBe(1);
  const digest = Bun.spawnSync(["bash", join(REPO, "scripts", "failure-digest.sh"), log], { stdout: "pipe", stderr: "pipe" });
  expect(digest.exitCode).toBe(0);
  const text = digest.stdout.toString();
  expect(text).toContain("--- test/sample.test.ts: (fail) loud and broken");
  expect(text).toContain("\nfailing-says\n");
  expect(text).toContain("Expected: 2");
  expect(text).not.toContain("\npassing-says\n");
  expect(text.match(/^--- /gm)).toHaveLength(1);
});
