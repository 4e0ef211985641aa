import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { JobStatus } from "../../gen/studio/v1/job_pb.js";
import { WorkerProcess, buildWorkerBinary, readOutput, removeWorkerBinary, watchJob } from "../e2e/worker-harness.js";
import { groupAlive, llamaSource, loggedEnginePid, registerModels } from "../e2e/real-engines-harness.js";
import { startModelServer, type ModelServer } from "../helpers/model-server.js";
import { realEngines } from "../helpers/real-engines.js";
import { apiError, jobIdOf, startApiStudio, type ApiStudio } from "./helpers.js";

/**
 * The OpenAI API with the official SDK against a real studio, the compiled worker and the real
 * llama-server (STUDIO_TEST_ENGINES) on the tiny models: tokens stream from llama-server's SSE
 * through the worker and the studio to the client; the answer equals the job's output.
 */
const engines = realEngines();
const TEST_TIMEOUT_MS = 60_000;
const HOOK_TIMEOUT_MS = 120_000;

describe.skipIf(!engines)("the OpenAI API with the real llama-server", () => {
  const e = engines!;
  let s: ApiStudio;
  let files: ModelServer;
  let dir: string;
  let w: WorkerProcess;
  let client: OpenAI;

  const output = async (jobId: string) =>
    JSON.parse((await readOutput(s.jobs, jobId, 0)).data.toString("utf8")) as {
      text: string;
      reasoning?: string;
      finishReason: string;
      usage: { promptTokens: number; completionTokens: number };
    };

  beforeAll(async () => {
    buildWorkerBinary();
    dir = mkdtempSync(join(tmpdir(), "openai-real-llama-"));
    s = await startApiStudio({ heartbeatIntervalMs: 500, leaseTtlMs: 10_000 });
    files = startModelServer((["tiny-llama.gguf", "tiny-llama-r1.gguf", "tiny-llama-long.gguf"] as const).map((n) => e.model(n)));
    await registerModels(s.registry, {
      "tiny-llama": llamaSource(e, files, "tiny-llama.gguf"),
      "tiny-llama-r1": llamaSource(e, files, "tiny-llama-r1.gguf"),
      "tiny-llama-long": llamaSource(e, files, "tiny-llama-long.gguf"),
    });
    w = new WorkerProcess(
      [
        "--server", s.url,
        "--name", "openai-llama",
        "--cache-dir", join(dir, "cache"),
        "--work-dir", join(dir, "work"),
        "--llama-server", e.llamaServer,
        "--engines", "llama-cpp",
        "--progress", "log",
        "--job-timeout", "120",
        "--drain-grace-seconds", "5",
      ],
      { STUDIO_TOKEN: s.workerToken },
    );
    await w.waitForLine((l) => l.msg === "connected to the studio");
    client = s.openai();
  }, HOOK_TIMEOUT_MS);

  afterAll(async () => {
    if (w) {
      w.proc.kill("SIGTERM");
      const timer = setTimeout(() => w.proc.kill("SIGKILL"), 20_000);
      await w.exited;
      clearTimeout(timer);
    }
    await s?.stop();
    files?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    removeWorkerBinary();
  }, HOOK_TIMEOUT_MS);

  test("chat, streamed: the tokens arrive in chunks adding up to the job's output; usage is llama-server's", async () => {
    const { data: stream, response } = await client.chat.completions
      .create({ model: "tiny-llama-long", messages: [{ role: "user", content: "Tell me a story" }], max_tokens: 400, seed: 3, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    const jobId = response.headers.get("x-studio-job-id")!;
    const pieces: string[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      const content = chunk.choices[0]?.delta.content;
      if (content) pieces.push(content);
      finish ??= chunk.choices[0]?.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    const out = await output(jobId);
    // Tokens that llama-server sends close together share a message, so the count of pieces varies
    // (a worker starved for the whole 400 tokens, about 150 ms here, sends them in one): that pieces
    // come while the job runs is shown on a job too long to end meanwhile (pieceWhileRunning).
    expect(pieces.length).toBeGreaterThan(0);
    expect(pieces.join("")).toBe(out.text);
    expect(finish).toBe(out.finishReason);
    expect(usage).toEqual({
      prompt_tokens: out.usage.promptTokens,
      completion_tokens: out.usage.completionTokens,
      total_tokens: out.usage.promptTokens + out.usage.completionTokens,
    });
    expect(usage!.prompt_tokens).toBeGreaterThan(0);
    expect(usage!.completion_tokens).toBeLessThanOrEqual(400);
  }, TEST_TIMEOUT_MS);

  test("seed and max_tokens reach llama-server: the same seed answers the same, max_tokens ends with length", async () => {
    const ask = () => client.chat.completions.create({ model: "tiny-llama", messages: [{ role: "user", content: "again" }], max_tokens: 12, seed: 99, temperature: 0.8, top_p: 0.9 });
    const [one, two] = [await ask(), await ask()];
    expect(one.choices[0]!.message.content).toBe(two.choices[0]!.message.content);
    expect(one.choices[0]!.finish_reason).toBe("length");
    expect(one.usage!.completion_tokens).toBe(12);
    const job = (await s.jobs.getJob({ jobId: jobIdOf(one.id) })).job!;
    expect(job.task?.kind.case === "text" && [job.task.kind.value.seed, job.task.kind.value.topP]).toEqual([99n, 0.9]);
  }, TEST_TIMEOUT_MS);

  test("completions, streamed: a prompt without a chat template, in pieces adding up to the job's output", async () => {
    const { data: stream, response } = await client.completions
      .create({ model: "tiny-llama-long", prompt: "Once upon a time", max_tokens: 400, seed: 5, stream: true })
      .withResponse();
    const jobId = response.headers.get("x-studio-job-id")!;
    const pieces: string[] = [];
    for await (const chunk of stream) {
      const text = chunk.choices[0]?.text;
      if (text) pieces.push(text);
    }
    expect(pieces.length).toBeGreaterThan(0);
    expect(pieces.join("")).toBe((await output(jobId)).text);
  }, TEST_TIMEOUT_MS);

  /**
   * Reads a streamed answer of up to 30,000 tokens (seconds of generation here) until three pieces
   * came, asks the studio for the job, and hangs up: the pieces came while the job was running,
   * whatever the load, and the hang-up cancels it.
   */
  async function pieceWhileRunning(stream: AsyncIterable<unknown>, jobId: string, pieceOf: (chunk: never) => string | null | undefined) {
    let pieces = 0;
    let status: JobStatus | undefined;
    for await (const chunk of stream) {
      if (pieceOf(chunk as never) && ++pieces === 3) {
        status = (await s.jobs.getJob({ jobId })).job!.status;
        break;
      }
    }
    expect(pieces).toBe(3);
    expect(status).toBe(JobStatus.RUNNING);
    expect((await watchJob(s.jobs, jobId)).status).toBe(JobStatus.CANCELLED);
  }

  test("chat and completions stream piece by piece while the job runs", async () => {
    const chat = await client.chat.completions
      .create({ model: "tiny-llama-long", messages: [{ role: "user", content: "Tell me a long story" }], max_tokens: 30_000, stream: true })
      .withResponse();
    await pieceWhileRunning(chat.data, chat.response.headers.get("x-studio-job-id")!, (c: OpenAI.ChatCompletionChunk) => c.choices[0]?.delta.content);
    const completion = await client.completions
      .create({ model: "tiny-llama-long", prompt: "Once upon a time", max_tokens: 30_000, stream: true })
      .withResponse();
    await pieceWhileRunning(completion.data, completion.response.headers.get("x-studio-job-id")!, (c: OpenAI.Completion) => c.choices[0]?.text);
  }, TEST_TIMEOUT_MS);

  test("a thinking model's reasoning streams as delta.reasoning_content and comes back as message.reasoning_content", async () => {
    const stream = await client.chat.completions.create({ model: "tiny-llama-r1", messages: [{ role: "user", content: "Think first" }], max_tokens: 32, stream: true });
    let reasoning = "";
    let content = "";
    let pieces = 0;
    let id = "";
    for await (const chunk of stream) {
      id = chunk.id;
      const delta = chunk.choices[0]?.delta as { content?: string | null; reasoning_content?: string } | undefined;
      if (delta?.reasoning_content) {
        reasoning += delta.reasoning_content;
        pieces++;
      }
      content += delta?.content ?? "";
    }
    const out = await output(jobIdOf(id));
    expect(out.reasoning).toBeDefined();
    expect(pieces).toBeGreaterThan(0);
    expect(reasoning).toBe(out.reasoning!);
    expect(content).toBe(out.text);
    const whole = await client.chat.completions.create({ model: "tiny-llama-r1", messages: [{ role: "user", content: "Think first" }], max_tokens: 32 });
    const message = whole.choices[0]!.message as { content: string | null; reasoning_content?: string };
    expect(message.reasoning_content).toBe((await output(jobIdOf(whole.id))).reasoning!);
  }, TEST_TIMEOUT_MS);

  test("a client that disconnects mid-stream cancels its job, and llama-server stops generating", async () => {
    const started = loggedEnginePid(w, "llama-server started", (l) => String(l.model).includes(e.model("tiny-llama-long.gguf").sha256));
    const { data: stream, response } = await client.chat.completions
      .create({ model: "tiny-llama-long", messages: [{ role: "user", content: "go on and on" }], max_tokens: 30_000, stream: true })
      .withResponse();
    const jobId = response.headers.get("x-studio-job-id")!;
    let pieces = 0;
    for await (const chunk of stream) if (chunk.choices[0]?.delta.content && ++pieces >= 5) break;
    expect((await watchJob(s.jobs, jobId)).status).toBe(JobStatus.CANCELLED);
    const { pid, port } = await started;
    let busy = true;
    for (let i = 0; i < 200 && busy; i++) {
      const slots = (await (await fetch(`http://127.0.0.1:${port}/slots`)).json()) as Array<{ is_processing: boolean }>;
      busy = slots.some((slot) => slot.is_processing);
      if (busy) await Bun.sleep(25);
    }
    expect(busy).toBe(false);
    // The warm server stays for the next job.
    expect(groupAlive(pid)).toBe(true);
  }, TEST_TIMEOUT_MS);

  test("llama-server killed after the stream began: the client gets an error event, not a repeated answer, and the job is cancelled", async () => {
    const { data: stream, response } = await client.chat.completions
      .create({ model: "tiny-llama-long", messages: [{ role: "user", content: "keep talking" }], max_tokens: 30_000, stream: true })
      .withResponse();
    const jobId = response.headers.get("x-studio-job-id")!;
    let pieces = 0;
    const failure = (async () => {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta.content && ++pieces === 5) {
          const servers = w.lines.filter((l) => l.msg === "llama-server started" && String(l.model).includes(e.model("tiny-llama-long.gguf").sha256));
          process.kill(Number(servers.at(-1)!.pid), "SIGKILL");
        }
      }
    })();
    const err = await apiError(failure);
    expect(err.error.code).toBe("job_interrupted");
    const job = await watchJob(s.jobs, jobId);
    expect(job.status).toBe(JobStatus.CANCELLED);
    // What it streamed before is kept with the job.
    expect((await s.jobs.getJob({ jobId })).job!.streamedText?.text.length).toBeGreaterThan(0);
  }, TEST_TIMEOUT_MS);

  test("the disabled model and the model no worker here runs are refused in OpenAI's shape", async () => {
    await s.registry.setModelEnabled({ name: "tiny-llama-r1", enabled: false });
    try {
      const res = await apiError(client.chat.completions.create({ model: "tiny-llama-r1", messages: [{ role: "user", content: "x" }] }));
      expect([res.status, res.error.code]).toEqual([400, "model_disabled"]);
    } finally {
      await s.registry.setModelEnabled({ name: "tiny-llama-r1", enabled: true });
    }
  }, TEST_TIMEOUT_MS);
});
