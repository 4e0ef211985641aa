import { expect, test } from "bun:test";
import { httpUrlProblem } from "../../contract/http-url.js";
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
