import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { JobStatus, type Job } from "../../gen/studio/v1/job_pb.js";
import { startSlowSyntheticWorker, type WorkerProcess } from "../web/worker-process.js";
import { readOutput, watchJob } from "../e2e/worker-harness.js";
import { addSyntheticModel, apiError, jobIdOf, rawExchange, startApiStudio, type ApiStudio } from "./helpers.js";

let s: ApiStudio;
let worker: WorkerProcess;

beforeAll(async () => {
  // A short wait, so that the 503 of a model no worker runs comes quickly.
  s = await startApiStudio({ openaiWaitMs: 1500 });
  await addSyntheticModel(s, "synthetic-off", false);
  worker = startSlowSyntheticWorker({ server: s.url, token: s.workerToken, name: "openai-worker", stepMs: 2 });
  await worker.waitForLog((l) => l.msg === "connected to the studio");
});

afterAll(async () => {
  await worker?.stop();
  await s?.stop();
});

/** The first job (snapshot or change) that matches, over WatchJobs. */
async function firstJob(studio: ApiStudio, match: (j: Job & { task?: { kind: { value?: { messages?: Array<{ content: string }> } } } }) => boolean): Promise<string> {
  const abort = new AbortController();
  try {
    for await (const res of studio.jobs.watchJobs({ includeSnapshot: true }, { signal: abort.signal }))
      if (res.job && match(res.job as never)) return res.job.id;
  } finally {
    abort.abort();
  }
  throw new Error("WatchJobs ended");
}

/** A text job's output as the studio stores it. */
async function textOutput(jobId: string) {
  const { mimeType, data } = await readOutput(s.jobs, jobId, 0);
  expect(mimeType).toBe("application/json");
  return JSON.parse(data.toString("utf8")) as { text: string; finishReason: string; usage: { promptTokens: number; completionTokens: number } };
}

describe("models", () => {
  test("GET /v1/models lists the enabled models with their engine; retrieve answers one or 404", async () => {
    const client = s.openai();
    const models = [];
    for await (const m of client.models.list()) models.push(m);
    const byId = new Map(models.map((m) => [m.id, m as OpenAI.Model & { engine: string }]));
    expect(byId.get("synthetic")).toMatchObject({ object: "model", owned_by: "studio", engine: "synthetic" });
    expect(byId.get("qwen3-0.6b")?.engine).toBe("llama-cpp");
    expect(byId.get("z-image-turbo")?.engine).toBe("sd-cpp");
    expect(byId.has("synthetic-off")).toBe(false);
    expect((await client.models.retrieve("synthetic")).id).toBe("synthetic");
    const missing = await apiError(client.models.retrieve("synthetic-off"));
    expect(missing.status).toBe(404);
    expect(missing.error.code).toBe("model_not_found");
  });
});

describe("chat completions", () => {
  test("without stream: one answer whose text, finish reason and usage are the job's output; the job is in the queue like any other", async () => {
    const answer = await s.openai().chat.completions.create({
      model: "synthetic",
      messages: [
        { role: "system", content: "you are terse" },
        { role: "user", content: "name some words" },
      ],
      max_tokens: 32,
      temperature: 0.2,
      top_p: 0.8,
      stop: ["zz"],
      seed: 11,
    });
    expect(answer.object).toBe("chat.completion");
    const jobId = jobIdOf(answer.id);
    const job = (await s.jobs.getJob({ jobId })).job!;
    expect(job.status).toBe(JobStatus.SUCCEEDED);
    expect(job.model).toBe("synthetic");
    const t = job.task?.kind.case === "text" ? job.task.kind.value : undefined;
    expect([t?.maxTokens, t?.temperature, t?.topP, t?.stop, t?.seed, t?.messages.length]).toEqual([32, 0.2, 0.8, ["zz"], 11n, 2]);
    const output = await textOutput(jobId);
    expect(answer.choices[0]!.message).toMatchObject({ role: "assistant", content: output.text });
    expect(answer.choices[0]!.finish_reason).toBe("stop");
    expect(answer.usage).toEqual({
      prompt_tokens: output.usage.promptTokens,
      completion_tokens: output.usage.completionTokens,
      total_tokens: output.usage.promptTokens + output.usage.completionTokens,
    });
    expect((await s.jobs.listJobs({})).jobs.some((j) => j.id === jobId)).toBe(true);
  });

  test("stream: the role first, the text in pieces, the finish reason, the usage when asked, [DONE]", async () => {
    const { data: stream, response } = await s
      .openai()
      .chat.completions.create({ model: "synthetic", messages: [{ role: "user", content: "stream please" }], stream: true, stream_options: { include_usage: true } })
      .withResponse();
    expect(response.headers.get("content-type")).toStartWith("text/event-stream");
    const jobId = response.headers.get("x-studio-job-id")!;
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === `chatcmpl-${jobId}` && c.model === "synthetic")).toBe(true);
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: "assistant", content: "" });
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    const output = await textOutput(jobId);
    expect(text).toBe(output.text);
    const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finish.map((c) => c.choices[0]!.finish_reason)).toEqual(["stop"]);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage?.completion_tokens).toBe(output.usage.completionTokens);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
  });

  test("max_tokens reaches the engine: finish_reason length", async () => {
    const answer = await s.openai().chat.completions.create({ model: "synthetic", messages: [{ role: "user", content: "x" }], max_tokens: 3 });
    expect(answer.choices[0]!.finish_reason).toBe("length");
    expect(answer.choices[0]!.message.content!.split(" ")).toHaveLength(3);
    expect(answer.usage?.completion_tokens).toBe(3);
  });

  test("WatchJobs sees an API request's job until it succeeded", async () => {
    const client = s.openai();
    // A job of the model first, so that the watch's snapshot says when it is listening.
    await client.chat.completions.create({ model: "synthetic", messages: [{ role: "user", content: "before" }] });
    const seen: Job[] = [];
    let changed = () => {};
    const abort = new AbortController();
    let listening!: () => void;
    const live = new Promise<void>((resolve) => (listening = resolve));
    const watching = (async () => {
      for await (const res of s.jobs.watchJobs({ model: "synthetic", includeSnapshot: true }, { signal: abort.signal })) {
        if (!res.job) continue;
        listening();
        if (res.snapshot) continue;
        seen.push(res.job);
        changed();
      }
    })().catch(() => undefined);
    await live;
    const answer = await client.chat.completions.create({ model: "synthetic", messages: [{ role: "user", content: "watched" }] });
    const jobId = jobIdOf(answer.id);
    const succeeded = () => seen.some((j) => j.id === jobId && j.status === JobStatus.SUCCEEDED);
    while (!succeeded()) await new Promise<void>((resolve) => (changed = resolve));
    abort.abort();
    await watching;
  });
});

describe("completions", () => {
  test("without and with stream", async () => {
    const client = s.openai();
    const answer = await client.completions.create({ model: "synthetic", prompt: "once upon a time", max_tokens: 5 });
    expect(answer.object).toBe("text_completion");
    const output = await textOutput(jobIdOf(answer.id));
    expect(answer.choices[0]).toMatchObject({ index: 0, text: output.text, finish_reason: "length" });
    const stream = await client.completions.create({ model: "synthetic", prompt: "once upon a time", stream: true });
    let text = "";
    let id = "";
    const reasons: string[] = [];
    for await (const chunk of stream) {
      id = chunk.id;
      text += chunk.choices[0]?.text ?? "";
      if (chunk.choices[0]?.finish_reason) reasons.push(chunk.choices[0].finish_reason);
    }
    expect(text).toBe((await textOutput(jobIdOf(id))).text);
    expect(reasons).toEqual(["stop"]);
  });
});

describe("images", () => {
  test("b64_json: n images of the asked size, the seed kept on the job", async () => {
    const result = await s.openai().images.generate({ model: "synthetic", prompt: "a red fox", n: 2, size: "64x48" as never, response_format: "b64_json", seed: 5 } as never);
    expect(result.data).toHaveLength(2);
    for (const image of result.data!) {
      const png = Buffer.from(image.b64_json!, "base64");
      expect(png.subarray(1, 4).toString()).toBe("PNG");
      expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([64, 48]);
    }
    const jobs = (await s.jobs.listJobs({ model: "synthetic" })).jobs;
    const job = jobs.find((j) => j.task?.kind.case === "image" && j.task.kind.value.prompt === "a red fox")!;
    const t = job.task!.kind.value as { batchCount: number; seed?: bigint; overrides?: { width?: number; height?: number } };
    expect([t.batchCount, t.seed, t.overrides?.width, t.overrides?.height]).toEqual([2, 5n, 64, 48]);
  });

  test("url: the studio's output route, readable with the same key", async () => {
    const result = await s.openai().images.generate({ model: "synthetic", prompt: "a blue heron", size: "64x64" as never });
    const url = result.data![0]!.url!;
    expect(url).toStartWith(`${s.url}/jobs/`);
    const refused = await fetch(url);
    expect(refused.status).toBe(401);
    const got = await fetch(url, { headers: { authorization: `Bearer ${s.clientToken}` } });
    expect(got.status).toBe(200);
    expect(got.headers.get("content-type")).toBe("image/png");
    expect(Buffer.from(await got.arrayBuffer()).readUInt32BE(16)).toBe(64);
  });
});

describe("errors in OpenAI's shape", () => {
  const chat = (model: string, extra: Record<string, unknown> = {}) =>
    s.openai().chat.completions.create({ model, messages: [{ role: "user", content: "x" }], ...extra } as never);

  test("unknown model 404 model_not_found; disabled model 400; an engine that cannot do the task 400", async () => {
    const unknown = await apiError(chat("no-such-model"));
    expect(unknown.status).toBe(404);
    expect(unknown.error).toMatchObject({ type: "invalid_request_error", code: "model_not_found", param: "model" });
    const disabled = await apiError(chat("synthetic-off"));
    expect(disabled.status).toBe(400);
    expect(disabled.error).toMatchObject({ code: "model_disabled", param: "model" });
    expect(disabled.error.message).toContain("disabled");
    const imageModel = await apiError(chat("z-image-turbo"));
    expect(imageModel.status).toBe(400);
    expect(imageModel.error.code).toBe("model_not_supported");
    expect(imageModel.error.message).toContain("/v1/images/generations");
    const textModel = await apiError(s.openai().images.generate({ model: "qwen3-0.6b", prompt: "x" }));
    expect(textModel.status).toBe(400);
    expect(textModel.error.message).toContain("runs llama-cpp");
    // Nothing was queued for any of them.
    const models = (await s.jobs.listJobs({})).jobs.map((j) => j.model);
    expect(models.filter((m) => m !== "synthetic")).toEqual([]);
  });

  test("a bad parameter 400 names it", async () => {
    const bad = await apiError(chat("synthetic", { temperature: 7 }));
    expect(bad.status).toBe(400);
    expect(bad.error).toMatchObject({ type: "invalid_request_error", param: "temperature" });
    expect((await apiError(chat("synthetic", { n: 3 }))).error.param).toBe("n");
    expect((await apiError(s.openai().images.generate({ model: "synthetic", prompt: "x", size: "100x100" as never }))).error.param).toBe("size");
  });

  test("no key, a wrong key, a revoked-style garbage header: 401; a worker key: 403", async () => {
    const none = await fetch(`${s.url}/v1/models`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { type: string; code: string } }).error).toMatchObject({ type: "authentication_error", code: "invalid_api_key" });
    const wrong = await apiError(s.openai("stu_not-a-real-token").models.list());
    expect(wrong.status).toBe(401);
    expect(wrong.error.code).toBe("invalid_api_key");
    const worker = await apiError(s.openai(s.workerToken).chat.completions.create({ model: "synthetic", messages: [{ role: "user", content: "x" }] }));
    expect(worker.status).toBe(403);
    expect(worker.error.type).toBe("permission_error");
  });

  test("the key is checked from the headers before the body is read; bodies are bounded", async () => {
    // No key and a body announced as 100 MB that never comes: refused at once.
    const started = Date.now();
    const head = await rawExchange(
      s.url,
      `POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n{"model":`,
    );
    expect(head).toStartWith("HTTP/1.1 401");
    expect(Date.now() - started).toBeLessThan(3000);
    // With a key: over the limit is 413 before it is read, as announced or as sent.
    const big = JSON.stringify({ model: "synthetic", messages: [{ role: "user", content: "x".repeat(3 * 1024 * 1024) }] });
    const tooBig = await fetch(`${s.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.clientToken}`, "content-type": "application/json" },
      body: big,
    });
    expect(tooBig.status).toBe(413);
    expect(((await tooBig.json()) as { error: { code: string } }).error.code).toBe("request_too_large");
    const notJson = await fetch(`${s.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.clientToken}`, "content-type": "application/json" },
      body: "{nope",
    });
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: { code: string } }).error.code).toBe("invalid_json");
  });

  test("unknown /v1 paths answer 404 in OpenAI's shape", async () => {
    const res = await fetch(`${s.url}/v1/embeddings`, { method: "POST", headers: { authorization: `Bearer ${s.clientToken}` }, body: "{}" });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unknown_url");
  });

  test("no worker takes the job within the wait: 503 saying so, and the job is cancelled", async () => {
    const started = Date.now();
    const res = await apiError(s.openai().chat.completions.create({ model: "qwen3-0.6b", messages: [{ role: "user", content: "anyone?" }] }));
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    expect(res.status).toBe(503);
    expect(res.error.code).toBe("no_worker_available");
    expect(res.error.message).toContain("within 1.5 s");
    expect(res.error.message).toContain("no worker runs llama-cpp");
    const job = (await s.jobs.listJobs({ model: "qwen3-0.6b" })).jobs[0]!;
    expect(job.status).toBe(JobStatus.CANCELLED);
  });
});

describe("a client that goes away", () => {
  let slow: ApiStudio;
  let slowWorker: WorkerProcess;
  beforeAll(async () => {
    slow = await startApiStudio();
    slowWorker = startSlowSyntheticWorker({ server: slow.url, token: slow.workerToken, name: "slow-worker", stepMs: 400 });
    await slowWorker.waitForLog((l) => l.msg === "connected to the studio");
  });
  afterAll(async () => {
    await slowWorker?.stop();
    await slow?.stop();
  });

  test("mid-stream: its job is cancelled and the worker stops it", async () => {
    const { data: stream, response } = await slow
      .openai()
      .chat.completions.create({ model: "synthetic", messages: [{ role: "user", content: "a long one" }], stream: true })
      .withResponse();
    const jobId = response.headers.get("x-studio-job-id")!;
    for await (const _ of stream) break; // the role chunk: the job is running
    const job = await watchJob(slow.jobs, jobId);
    expect(job.status).toBe(JobStatus.CANCELLED);
    await slowWorker.waitForLog((l) => l.jobId === jobId && l.outcome === "cancelled");
  });

  test("while waiting for a non-streamed answer: its job is cancelled too", async () => {
    const abort = new AbortController();
    const request = slow.openai().chat.completions.create({ model: "synthetic", messages: [{ role: "user", content: "never mind" }] }, { signal: abort.signal });
    const jobId = await firstJob(slow, (j) => j.status === JobStatus.RUNNING && j.task?.kind.value?.messages?.[0]?.content === "never mind");
    expect(jobId).not.toBe("");
    abort.abort();
    await request.catch(() => undefined);
    expect((await watchJob(slow.jobs, jobId)).status).toBe(JobStatus.CANCELLED);
  });
});
