import { afterEach, describe, expect, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ModelFileRole } from "../../../gen/studio/v1/model_pb.js";
import { EngineError, SdCliEngine, type EngineProgress } from "../../../worker/engines/index.js";
import { fakeSdImage } from "../../fixtures/fake-image.js";
import { FAKE_SD_CLI, alive, imageTask, memoryLogger, rejection, request, sdSource, workDir } from "./helpers.js";

const FILES = [
  { role: ModelFileRole.DIFFUSION_MODEL, filename: "z_image_turbo-Q4_K.gguf" },
  { role: ModelFileRole.TEXT_ENCODER, filename: "Qwen3-4B-Q4_K_M.gguf" },
  { role: ModelFileRole.VAE, filename: "ae.safetensors" },
];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function setup(env: Record<string, string> | ((dir: string) => Record<string, string>) = {}, opts: { extraArgs?: string[]; killGraceMs?: number; files?: typeof FILES } = {}) {
  const files = opts.files ?? FILES;
  const wd = await workDir(files);
  const logger = memoryLogger();
  const argvFile = join(wd.dir, "argv.json");
  const engine = new SdCliEngine({
    binary: FAKE_SD_CLI,
    logger,
    extraArgs: opts.extraArgs,
    killGraceMs: opts.killGraceMs ?? 2000,
    env: { ...process.env, FAKE_SD_ARGV_FILE: argvFile, ...(typeof env === "function" ? env(wd.dir) : env) },
  });
  cleanups.push(async () => {
    await engine.close();
    for (const pid of logger.pids("sd-cli started")) expect(alive(-pid)).toBe(false);
    await wd.cleanup();
  });
  const source = sdSource(files, { cfgScale: 1, steps: 4, width: 64, height: 64, samplingMethod: "euler" });
  return { wd, engine, logger, argvFile, source };
}

describe("SdCliEngine against the fake sd-cli", () => {
  test("runs sd-cli with the exact argv for a 3-file source, a lora and overrides, and returns its PNG", async () => {
    const files = [...FILES, { role: ModelFileRole.LORA, filename: "pixel-art.safetensors" }];
    const { wd, engine, argvFile, source } = await setup({}, { files });
    const task = imageTask({ prompt: "a red fox", negativePrompt: "blurry", seed: 7n, overrides: { steps: 3, width: 32 } });
    const req = request({ task, source, files: wd.files, loraDir: wd.loraDir, workDir: wd.dir });
    const outputs = await engine.run(req);
    const m = (name: string) => join(wd.dir, "models", name);
    expect(JSON.parse(await readFile(argvFile, "utf8"))).toEqual([
      "--diffusion-model", m("z_image_turbo-Q4_K.gguf"),
      "--llm", m("Qwen3-4B-Q4_K_M.gguf"),
      "--vae", m("ae.safetensors"),
      "--lora-model-dir", wd.loraDir,
      "-p", "a red fox <lora:pixel-art.safetensors:1>",
      "-n", "blurry",
      "-s", "7",
      "-b", "1",
      "--cfg-scale", "1",
      "--steps", "3",
      "-W", "32",
      "-H", "64",
      "--sampling-method", "euler",
      "-o", join(wd.dir, "out.png"),
    ]);
    expect(outputs).toHaveLength(1);
    expect(outputs[0]!.mimeType).toBe("image/png");
    expect(outputs[0]!.data).toEqual(fakeSdImage({ prompt: "a red fox <lora:pixel-art.safetensors:1>", seed: "7", width: 32, height: 64, index: 0 }));
    const bars = req.progress.filter((p) => p.step !== undefined);
    expect(bars.map((p) => [p.step, p.steps])).toEqual([[1, 3], [2, 3], [3, 3]]);
    expect(bars.every((p) => p.phase === "running" && p.rate !== undefined && p.rate > 0)).toBe(true);
    expect(bars[0]!.message).toBe("image 1/1: step 1/3");
    const loading = req.progress.filter((p) => p.phase === "loading").map((p) => p.message);
    expect(loading).toContain(`loading diffusion model from '${m("z_image_turbo-Q4_K.gguf")}'`);
    expect(req.progress.some((p) => p.message === "generating image: 1/1 - seed 7")).toBe(true);
  });

  test("a batch returns out_0.png, out_1.png, out_2.png in order, each the fake's bytes", async () => {
    const { wd, engine, source } = await setup();
    const task = imageTask({ prompt: "three cats", seed: 11n, batchCount: 3 });
    const outputs = await engine.run(request({ task, source, files: wd.files, workDir: wd.dir }));
    expect(outputs.map((o) => o.data)).toEqual(
      [0, 1, 2].map((index) => fakeSdImage({ prompt: "three cats", seed: "11", width: 64, height: 64, index })),
    );
  });

  test("exit 1 after a failed allocation is out-of-memory (not retried), with the exit status and the last lines of output", async () => {
    const { wd, engine, source } = await setup({ FAKE_SD_MODE: "fail" });
    const err = await rejection(engine.run(request({ task: imageTask({ prompt: "x" }), source, files: wd.files, workDir: wd.dir })));
    expect(err).toBeInstanceOf(EngineError);
    expect(err.kind).toBe("out-of-memory");
    expect(err.retryable).toBe(false);
    expect(err.message).toStartWith("sd-cli ran out of memory: ");
    expect(err.message).toContain("sd-cli exited with status 1");
    expect(err.message).toContain("get_learned_condition failed: out of memory");
    expect(err.message).toContain("generate failed");
  });

  test("an unknown flag makes sd-cli exit 1 and the engine report its error line", async () => {
    const { wd, engine, source } = await setup({}, { extraArgs: ["--no-such-flag"] });
    const err = await rejection(engine.run(request({ task: imageTask({ prompt: "x" }), source, files: wd.files, workDir: wd.dir })));
    expect(err.kind).toBe("failed");
    expect(err.message).toContain("error: unknown argument: --no-such-flag");
  });

  test("a missing model file is a load failure", async () => {
    const { wd, engine, source } = await setup();
    const files = wd.files.map((f) => (f.role === ModelFileRole.VAE ? { ...f, path: join(wd.dir, "models", "gone.safetensors") } : f));
    const err = await rejection(engine.run(request({ task: imageTask({ prompt: "x" }), source, files, workDir: wd.dir })));
    expect(err.kind).toBe("failed");
    expect(err.message).toContain("init model loader from file failed");
  });

  test("death by signal is crashed", async () => {
    const { wd, engine, source, logger } = await setup({ FAKE_SD_MODE: "crash" });
    const err = await rejection(engine.run(request({ task: imageTask({ prompt: "x" }), source, files: wd.files, workDir: wd.dir })));
    expect(err.kind).toBe("crashed");
    expect(err.retryable).toBe(true);
    expect(err.message).toContain("SIGABRT");
    expect(alive(-logger.pids("sd-cli started")[0]!)).toBe(false);
  });

  test("a hang past the job timeout kills the whole process group, grandchild included", async () => {
    const { wd, engine, source, logger } = await setup((dir) => ({ FAKE_SD_MODE: "hang", FAKE_SD_CHILD_PID_FILE: join(dir, "child.pid") }));
    const childPidFile = join(wd.dir, "child.pid");
    const req = request({ task: imageTask({ prompt: "x" }), source, files: wd.files, workDir: wd.dir, timeoutMs: 600 });
    const err = await rejection(engine.run(req));
    expect(err.kind).toBe("timeout");
    const pid = logger.pids("sd-cli started")[0]!;
    expect(alive(-pid)).toBe(false);
    expect(alive(Number(await readFile(childPidFile, "utf8")))).toBe(false);
  });

  test("onSpawn names the process group as soon as sd-cli runs (for the crash recovery record)", async () => {
    const { wd, engine, source, logger } = await setup();
    const spawned: Array<[number, string]> = [];
    const req = request({ task: imageTask({ prompt: "x" }), source, files: wd.files, workDir: wd.dir, onSpawn: (pgid, binary) => spawned.push([pgid, binary]) });
    await engine.run(req);
    expect(spawned).toEqual([[logger.pids("sd-cli started")[0]!, FAKE_SD_CLI]]);
  });

  test("a program that ignores SIGTERM is SIGKILLed after the grace period", async () => {
    const { wd, engine, source, logger } = await setup({ FAKE_SD_MODE: "hang", FAKE_SD_IGNORE_TERM: "1" }, { killGraceMs: 200 });
    const err = await rejection(engine.run(request({ task: imageTask({ prompt: "x" }), source, files: wd.files, workDir: wd.dir, timeoutMs: 500 })));
    expect(err.kind).toBe("timeout");
    expect(alive(-logger.pids("sd-cli started")[0]!)).toBe(false);
  });

  test("cancel kills the process group and rejects with cancelled", async () => {
    const { wd, engine, source, logger } = await setup({ FAKE_SD_MODE: "hang" });
    const controller = new AbortController();
    const onProgress = (p: EngineProgress) => {
      if (p.step === 2) controller.abort();
    };
    const req = request({ task: imageTask({ prompt: "x" }), source, files: wd.files, workDir: wd.dir, signal: controller.signal, onProgress });
    const err = await rejection(engine.run(req));
    expect(err.kind).toBe("cancelled");
    expect(alive(-logger.pids("sd-cli started")[0]!)).toBe(false);
  });

  for (const [mode, expected] of [
    ["not-png", "out.png is not a valid PNG: it does not start with the PNG signature"],
    ["truncated-png", "out.png is not a valid PNG: it is truncated"],
    ["no-output", "wrote no out.png"],
  ] as const) {
    test(`${mode}: exit 0 with a bad output is bad-output`, async () => {
      const { wd, engine, source } = await setup({ FAKE_SD_MODE: mode });
      const err = await rejection(engine.run(request({ task: imageTask({ prompt: "x" }), source, files: wd.files, workDir: wd.dir })));
      expect(err.kind).toBe("bad-output");
      expect(err.message).toContain(expected);
    });
  }

  test("garbage on stdout does not break progress parsing", async () => {
    const { wd, engine, source } = await setup({ FAKE_SD_MODE: "garbage" });
    const req = request({ task: imageTask({ prompt: "x", seed: 1n }), source, files: wd.files, workDir: wd.dir });
    const outputs = await engine.run(req);
    expect(outputs).toHaveLength(1);
    expect(req.progress.filter((p) => p.step !== undefined).map((p) => p.step)).toEqual([1, 2, 3, 4]);
  });

  test("a missing binary is unavailable", async () => {
    const wd = await workDir(FILES);
    cleanups.push(wd.cleanup);
    const engine = new SdCliEngine({ binary: join(wd.dir, "no-sd-cli") });
    const err = await rejection(engine.run(request({ task: imageTask({ prompt: "x" }), source: sdSource(FILES), files: wd.files, workDir: wd.dir })));
    expect(err.kind).toBe("unavailable");
  });
});
