import { expect, test } from "bun:test";
import { httpUrlProblem, withoutCredentials } from "../../contract/http-url.js";
import { checkModelSourceJson } from "../../contract/model-source.js";
import { resolveGlobalOptions } from "../../cli/connection.js";
import { parseWorkerArgs } from "../../worker/ui/cli-options.js";

test("one URL rule for model files, the worker's --server and the CLI's --server", () => {
  expect(httpUrlProblem("https://studio.example:8080/")).toBeUndefined();
  const cases: Array<[string, string]> = [
    ["ftp://h/x", "must use http: or https:, not ftp:"],
    ["not a url", "must be an absolute http: or https: URL"],
    ["http://user:pw@h/", "must not carry credentials"],
  ];
  for (const [url, problem] of cases) {
    expect(httpUrlProblem(url)).toBe(problem);
    expect(() => resolveGlobalOptions({ server: url }, {})).toThrow(`--server (STUDIO_SERVER): ${problem}`);
    expect(() => parseWorkerArgs(["bun", "worker", "--server", url], { env: {} })).toThrow(`--server (STUDIO_SERVER): ${problem}`);
  }
});

test("a URL refused for its credentials is quoted without them, in every message that quotes it", () => {
  const url = "https://alice:s3cret-pw@studio.example/v1";
  expect(withoutCredentials(url)).toBe("https://***@studio.example/v1");
  expect(withoutCredentials("not a url")).toBe("not a url");
  expect(withoutCredentials("https://studio.example/")).toBe("https://studio.example/");
  const messages = [
    messageOf(() => resolveGlobalOptions({ server: url }, {})),
    messageOf(() => parseWorkerArgs(["bun", "worker", "--server", url], { env: {} })),
    messageOf(() => parseWorkerArgs(["bun", "worker"], { env: { STUDIO_SERVER: url } })),
  ];
  const source = checkModelSourceJson({ engine: "llama-cpp", files: [{ role: "model", filename: "m.gguf", url, sha256: "a".repeat(64) }] });
  expect(source.ok).toBe(false);
  if (!source.ok) messages.push(source.issues.map((i) => i.message).join("; "));
  for (const message of messages) {
    expect(message).toContain("must not carry credentials");
    expect(message).toContain("https://***@studio.example/v1");
    expect(message).not.toContain("s3cret-pw");
    expect(message).not.toContain("alice");
  }
});

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("no error");
}
