import { afterEach, describe, expect, test } from "bun:test";
import { mkdir, readFile, symlink } from "node:fs/promises";
import { join } from "node:path";
import { ModelFileRole } from "../../../gen/studio/v1/model_pb.js";
import { LlamaServerEngine, TEXT_OUTPUT_MIME, type EngineProgress } from "../../../worker/engines/index.js";
import { fakeLlamaTokens, fakePromptTokens } from "../../fixtures/fake-llama-text.js";
import { FAKE_LLAMA_SERVER, alive, llamaSource, memoryLogger, rejection, request, textTask, workDir } from "./helpers.js";

const MODEL = "qwen3-0.6b-q8_0.gguf";
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function setup(env: Record<string, string> = {}, opts: { idleMs?: number; healthTimeoutMs?: number; stopGraceMs?: number; ctxSize?: number; gpuLayers?: number; onSpawn?: (pgid: number, binary: string) => void; onReaped?: (pgid: number) => void } = {}) {
  const wd = await workDir([{ role: ModelFileRole.MODEL, filename: MODEL }]);
  const logger = memoryLogger();
  const argvFile = join(wd.dir, "argv.json");
  const engine = new LlamaServerEngine({
    binary: FAKE_LLAMA_SERVER,
    idleMs: opts.idleMs ?? 60_000,
    healthTimeoutMs: opts.healthTimeoutMs ?? 10_000,
    stopGraceMs: opts.stopGraceMs ?? 2000,
    ctxSize: opts.ctxSize,
    gpuLayers: opts.gpuLayers,
    healthIntervalMs: 20,
    logger,
    onSpawn: opts.onSpawn,
    onReaped: opts.onReaped,
    env: { ...process.env, FAKE_LLAMA_ARGV_FILE: argvFile, ...env },
  });
  const modelPath = wd.files[0]!.path;
  cleanups.push(async () => {
    await engine.close();
    for (const pid of logger.pids("llama-server started")) expect(alive(-pid)).toBe(false);
    await wd.cleanup();
  });
  const run = (task: ReturnType<typeof textTask>, extra: { signal?: AbortSignal; timeoutMs?: number; onProgress?: (p: EngineProgress) => void } = {}) => {
    const req = request({ task, source: llamaSource(MODEL), files: wd.files, workDir: wd.dir, ...extra });
    return { req, result: engine.run(req) };
  };
  return { wd, engine, logger, argvFile, modelPath, run, server: () => engine.server(modelPath)! };
}

function decode(data: Uint8Array) {
  return JSON.parse(new TextDecoder().decode(data)) as { text: string; finishReason: string; usage: { promptTokens: number; completionTokens: number } };
}

describe("LlamaServerEngine against the fake llama-server", () => {
  test("waits for /health (503 while loading), starts with the exact argv, streams /completion", async () => {
    const { run, argvFile, modelPath, server } = await setup({ FAKE_LLAMA_LOAD_MS: "300" }, { ctxSize: 4096, gpuLayers: 99 });
    const { req, result } = run(textTask({ prompt: "once upon a time", maxTokens: 5 }));
    const outputs = await result;
    const argv = JSON.parse(await readFile(argvFile, "utf8")) as string[];
    expect(argv).toEqual(["-m", modelPath, "--host", "127.0.0.1", "--port", argv[5]!, "-c", "4096", "-ngl", "99"]);
    expect(Number(argv[5])).toBeGreaterThan(0);
    expect(outputs).toHaveLength(1);
    expect(outputs[0]!.mimeType).toBe(TEXT_OUTPUT_MIME);
    expect(decode(outputs[0]!.data)).toEqual({
      text: fakeLlamaTokens("once upon a time", 5).join(""),
      finishReason: "length",
      usage: { promptTokens: fakePromptTokens("once upon a time"), completionTokens: 5 },
    });
    expect(req.progress[0]).toEqual({ phase: "loading", message: `starting llama-server for ${MODEL}` });
    expect(req.progress.filter((p) => p.phase === "running" && p.step! > 0).map((p) => p.step)).toEqual([1, 2, 3, 4, 5]);
    expect(server().state).toBe("ready");
  });

  test("onSpawn and onReaped bracket each warm server's life (for its crash recovery record)", async () => {
    const spawned: Array<[number, string]> = [];
    const reaped: number[] = [];
    const { run, server } = await setup({}, { onSpawn: (pgid, binary) => spawned.push([pgid, binary]), onReaped: (pgid) => reaped.push(pgid) });
    await run(textTask({ prompt: "a", maxTokens: 1 })).result;
    await run(textTask({ prompt: "b", maxTokens: 1 })).result;
    const pid = server().pid!;
    expect(spawned).toEqual([[pid, FAKE_LLAMA_SERVER]]);
    expect(reaped).toEqual([]);
    await server().stop();
    expect(reaped).toEqual([pid]);
  });

  test("messages go to /v1/chat/completions; pings and [DONE] are handled; usage comes from the stream", async () => {
    const { run } = await setup();
    const messages = [
      { role: "system", content: "be brief" },
      { role: "user", content: "name a colour" },
    ];
    const outputs = await run(textTask({ messages })).result;
    const input = messages.map((m) => `${m.role}: ${m.content}`).join("\n");
    expect(decode(outputs[0]!.data)).toEqual({
      text: fakeLlamaTokens(input, 8).join(""),
      finishReason: "stop",
      usage: { promptTokens: fakePromptTokens(input), completionTokens: 8 },
    });
  });

  test("a second job for the same model reuses the warm server", async () => {
    const { run, server, logger } = await setup();
    await run(textTask({ prompt: "one" })).result;
    const pid = server().pid;
    const { req, result } = run(textTask({ prompt: "two" }));
    await result;
    expect(server().pid).toBe(pid!);
    expect(logger.pids("llama-server started")).toEqual([pid!]);
    expect(req.progress.some((p) => p.phase === "loading")).toBe(false);
  });

  test("jobs with different work dirs linking the same cached file share one server", async () => {
    const { wd, run, server, logger, engine } = await setup();
    await run(textTask({ prompt: "one" })).result;
    const other = join(wd.dir, "job-2");
    await mkdir(join(other, "models"), { recursive: true });
    const link = join(other, "models", MODEL);
    await symlink(wd.files[0]!.path, link);
    const files = [{ ...wd.files[0]!, path: link }];
    await engine.run(request({ task: textTask({ prompt: "two" }), source: llamaSource(MODEL), files, workDir: other }));
    expect(logger.pids("llama-server started")).toEqual([server().pid!]);
  });

  test("a missing model file fails before any server starts", async () => {
    const { wd, engine, logger } = await setup();
    const files = [{ ...wd.files[0]!, path: join(wd.dir, "models", "gone.gguf") }];
    const err = await rejection(engine.run(request({ task: textTask({ prompt: "x" }), source: llamaSource(MODEL), files, workDir: wd.dir })));
    expect(err.kind).toBe("failed");
    expect(err.message).toContain("is missing from the work dir");
    expect(logger.pids("llama-server started")).toEqual([]);
  });

  test("the server stops after idleMs without work", async () => {
    const { run, server } = await setup({}, { idleMs: 100 });
    await run(textTask({ prompt: "one" })).result;
    const pid = server().pid!;
    await server().exitOfCurrent();
    expect(server().state).toBe("stopped");
    expect(alive(-pid)).toBe(false);
  });

  test("a server that died is restarted by the next job", async () => {
    const { run, server, logger } = await setup();
    await run(textTask({ prompt: "one" })).result;
    const first = server().pid!;
    const exited = server().exitOfCurrent();
    process.kill(-first, "SIGKILL");
    await exited;
    expect(server().state).toBe("stopped");
    const outputs = await run(textTask({ prompt: "two" })).result;
    expect(decode(outputs[0]!.data).text).toBe(fakeLlamaTokens("two", 8).join(""));
    expect(logger.pids("llama-server started")).toHaveLength(2);
    expect(server().pid).not.toBe(first);
  });

  test("an error event mid-stream fails the job", async () => {
    const { run } = await setup({ FAKE_LLAMA_MODE: "error-mid-stream" });
    const err = await rejection(run(textTask({ prompt: "x" })).result);
    expect(err.kind).toBe("failed");
    expect(err.message).toContain("the fake model ran out of memory");
  });

  test("a server that dies mid-stream is crashed, and the next job starts a new one", async () => {
    const { run, server } = await setup({ FAKE_LLAMA_MODE: "crash-mid-stream" });
    const err = await rejection(run(textTask({ prompt: "x" })).result);
    expect(err.kind).toBe("crashed");
    expect(server().state).toBe("stopped");
  });

  test("cancel aborts the request and keeps the server warm", async () => {
    const { run, server } = await setup({ FAKE_LLAMA_TOKEN_MS: "100", FAKE_LLAMA_TOKENS: "100" });
    const controller = new AbortController();
    const { result } = run(textTask({ prompt: "x" }), {
      signal: controller.signal,
      onProgress: (p) => {
        if (p.step === 1) controller.abort();
      },
    });
    const err = await rejection(result);
    expect(err.kind).toBe("cancelled");
    expect(server().state).toBe("ready");
  });

  test("the job timeout aborts the request and stops the server", async () => {
    const { run, server, logger } = await setup({ FAKE_LLAMA_TOKEN_MS: "200", FAKE_LLAMA_TOKENS: "100" });
    const err = await rejection(run(textTask({ prompt: "x" }), { timeoutMs: 700 }).result);
    expect(err.kind).toBe("timeout");
    expect(server().state).toBe("stopped");
    expect(alive(-logger.pids("llama-server started")[0]!)).toBe(false);
  });

  test("an early exit fails the job with the last stderr lines", async () => {
    const { run, server } = await setup({ FAKE_LLAMA_MODE: "exit-early", FAKE_LLAMA_LOAD_MS: "50" });
    const err = await rejection(run(textTask({ prompt: "x" })).result);
    expect(err.kind).toBe("failed");
    expect(err.message).toContain("exited with status 1 while loading");
    expect(err.message).toContain("main: exiting due to model loading error");
    expect(server().state).toBe("stopped");
  });

  test("a health timeout fails the job and stops the server", async () => {
    const { run, server, logger } = await setup({ FAKE_LLAMA_MODE: "never-ready" }, { healthTimeoutMs: 400 });
    const err = await rejection(run(textTask({ prompt: "x" })).result);
    expect(err.kind).toBe("failed");
    expect(err.message).toContain("did not become healthy within 400 ms");
    expect(err.message).toContain("llama_model_loader: loading model from");
    expect(server().state).toBe("stopped");
    expect(alive(-logger.pids("llama-server started")[0]!)).toBe(false);
  });

  test("close() SIGKILLs a server that ignores SIGTERM after the grace period", async () => {
    const { run, engine, server } = await setup({ FAKE_LLAMA_IGNORE_TERM: "1" }, { stopGraceMs: 200 });
    await run(textTask({ prompt: "x" })).result;
    const pid = server().pid!;
    await engine.close();
    expect(alive(-pid)).toBe(false);
    const err = await rejection(run(textTask({ prompt: "y" })).result);
    expect(err.kind).toBe("unavailable");
  });
});
