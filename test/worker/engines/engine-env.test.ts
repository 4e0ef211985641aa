import { afterEach, describe, expect, test } from "bun:test";
import { engineEnv } from "../../../worker/engines/engine-env.js";
import { killGroup, spawnGroup } from "../../../worker/engines/process-group.js";
import { parseWorkerArgs } from "../../../worker/ui/cli-options.js";

/**
 * Issue 16, item 13: engine processes inherited the worker's whole environment, STUDIO_TOKEN and
 * HF_TOKEN included. They now get a minimal one (engineEnv) unless the operator names more.
 */
const saved = { ...process.env };
afterEach(() => {
  for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
  Object.assign(process.env, saved);
});

/** What a real child started the way engines are started sees in its environment. */
async function childEnv(env?: NodeJS.ProcessEnv): Promise<Record<string, string>> {
  const g = await spawnGroup("/usr/bin/env", [], env ? { env } : {});
  let out = "";
  g.child.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
  await g.exited;
  await killGroup(g, 0);
  return Object.fromEntries(out.trim().split("\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
}

describe("the engine environment", () => {
  test("a spawned engine sees neither the worker's token nor the Hugging Face token nor anything unrelated", async () => {
    process.env.STUDIO_TOKEN = "stu_worker_secret";
    process.env.HF_TOKEN = "hf_secret";
    process.env.AWS_SECRET_ACCESS_KEY = "aws";
    process.env.CUDA_VISIBLE_DEVICES = "1";
    process.env.GGML_CUDA_NO_PINNED = "1";
    process.env.LC_ALL = "C.UTF-8";
    const seen = await childEnv();
    expect(seen.STUDIO_TOKEN).toBeUndefined();
    expect(seen.HF_TOKEN).toBeUndefined();
    expect(seen.AWS_SECRET_ACCESS_KEY).toBeUndefined();
    expect(seen).toMatchObject({ CUDA_VISIBLE_DEVICES: "1", GGML_CUDA_NO_PINNED: "1", LC_ALL: "C.UTF-8", PATH: process.env.PATH });
  });

  test("--engine-env adds names; the worker's secrets are refused even when named", () => {
    const from = { PATH: "/bin", MY_LICENSE: "x", STUDIO_TOKEN: "s", HF_TOKEN: "h", HOME: "/h" };
    expect(engineEnv(["MY_LICENSE", "STUDIO_TOKEN"], from)).toEqual({ PATH: "/bin", MY_LICENSE: "x", HOME: "/h" });
    const config = parseWorkerArgs(["bun", "worker", "--server", "http://studio:8080", "--engine-env", "MY_LICENSE, OTHER"], { env: {} });
    expect(config.engineEnv).toEqual(["MY_LICENSE", "OTHER"]);
    expect(() => parseWorkerArgs(["bun", "worker", "--server", "http://studio:8080", "--engine-env", "HF_TOKEN"], { env: {} })).toThrow(
      "HF_TOKEN is the worker's own secret and is never passed to engines",
    );
    expect(() => parseWorkerArgs(["bun", "worker", "--server", "http://studio:8080", "--engine-env", "A=B"], { env: {} })).toThrow(/environment variable names/);
  });
});
