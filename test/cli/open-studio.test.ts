import { afterAll, beforeAll, expect, test } from "bun:test";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { runCli } from "./run-cli.js";

/** The README's first steps on an open loopback studio, through the CLI as an operator runs them. */
let t: TestStudio;
beforeAll(async () => {
  t = await startTestStudio();
});
afterAll(() => t.stop());

test("on an open studio `tokens create --role client` first is refused with how to do it; admin first, then client, works", async () => {
  const env = { STUDIO_SERVER: t.url };
  const refused = await runCli(["tokens", "create", "laptop", "--role", "client"], env);
  expect(refused.exit).toBe(1);
  expect(refused.stderr).toContain("failed_precondition");
  expect(refused.stderr).toContain("--role admin");

  const made = await runCli(["--json", "tokens", "create", "operator", "--role", "admin"], env);
  expect(made.exit).toBe(0);
  const adminEnv = { ...env, STUDIO_TOKEN: JSON.parse(made.stdout).secret as string };
  const laptop = await runCli(["--json", "tokens", "create", "laptop", "--role", "client"], adminEnv);
  expect(laptop.exit).toBe(0);
  const listed = await runCli(["--json", "tokens", "list"], adminEnv);
  expect(listed.exit).toBe(0);
  expect(listed.stdout).toContain("operator");
  expect(listed.stdout).toContain("laptop");
});
