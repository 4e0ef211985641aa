import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createClient, type Client } from "@connectrpc/connect";
import OpenAI from "openai";
import { applyDelta, type TextSoFar } from "../../contract/text-delta.js";
import { JobStatus } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { transportFor } from "../auth/support.js";
import { readOutput, watchJob } from "../e2e/worker-harness.js";
import { freshPgDatabase } from "../helpers/pg-storage.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { startSlowSyntheticWorker, type WorkerProcess } from "../web/worker-process.js";
import { startApiStudio, type ApiStudio } from "./helpers.js";

/**
 * Tokens through the whole system: the worker's engine produces pieces (the synthetic engine, a
 * word a step), the worker relays them on its session, the studio keeps them with the job and
 * passes them to the OpenAI client's SSE, to WatchJobs (include_text) and to GetJob, on one
 * replica and across two on PostgreSQL.
 */

const STEP_MS = 60;

async function outputText(jobs: Client<typeof JobService>, jobId: string): Promise<string> {
  return (JSON.parse((await readOutput(jobs, jobId, 0)).data.toString("utf8")) as { text: string }).text;
}

describe("on one studio", () => {
  let s: ApiStudio;
  let worker: WorkerProcess;
  beforeAll(async () => {
    s = await startApiStudio();
    worker = startSlowSyntheticWorker({ server: s.url, token: s.workerToken, name: "streamer", stepMs: STEP_MS });
    await worker.waitForLog((l) => l.msg === "connected to the studio");
  });
  afterAll(async () => {
    await worker?.stop();
    await s?.stop();
  });

  test("the OpenAI stream gets the text piece by piece while the job runs, and GetJob shows it so far", async () => {
    const { data: stream, response } = await s
      .openai()
      .chat.completions.create({ model: "synthetic", messages: [{ role: "user", content: "piece by piece" }], stream: true })
      .withResponse();
    const jobId = response.headers.get("x-studio-job-id")!;
    const pieces: string[] = [];
    let runningWhenFirst: JobStatus | undefined;
    let soFar: string | undefined;
    for await (const chunk of stream) {
      const content = chunk.choices[0]?.delta.content;
      if (!content) continue;
      pieces.push(content);
      if (pieces.length === 1) runningWhenFirst = (await s.jobs.getJob({ jobId })).job!.status;
      if (pieces.length === 4) soFar = (await s.jobs.getJob({ jobId })).job!.streamedText?.text;
    }
    const text = await outputText(s.jobs, jobId);
    expect(runningWhenFirst).toBe(JobStatus.RUNNING);
    expect(pieces.length).toBeGreaterThan(5);
    expect(pieces.join("")).toBe(text);
    expect(soFar).toBeDefined();
    expect(text.startsWith(soFar!)).toBe(true);
    expect(soFar!.length).toBeGreaterThan(0);
  });

  test("WatchJobs with include_text: a watcher that joins mid-stream gets the text so far, then each piece exactly once", async () => {
    const done = s.openai().chat.completions.create({ model: "synthetic", messages: [{ role: "user", content: "watch me" }] });
    // The job, once it has streamed a few words.
    let jobId = "";
    for await (const res of s.jobs.watchJobs({ includeSnapshot: true, includeText: true, model: "synthetic" })) {
      if (res.textDelta && Number(res.textDelta.textOffset) > 10) {
        jobId = res.textDelta.jobId;
        break;
      }
    }
    let held: TextSoFar | undefined;
    const results: string[] = [];
    let snapshotText = "";
    for await (const res of s.jobs.watchJobs({ jobIds: [jobId], includeSnapshot: true, includeText: true })) {
      if (res.snapshot && res.job?.streamedText) {
        const t = res.job.streamedText;
        snapshotText = t.text;
        held = { attempt: t.attempt, text: t.text, reasoning: t.reasoning, textBytes: Buffer.byteLength(t.text), reasoningBytes: Buffer.byteLength(t.reasoning), tokens: t.tokens };
      }
      if (res.textDelta) {
        const r = applyDelta(held, res.textDelta);
        results.push(r.result);
        held = r.held;
      }
      if (res.job?.status === JobStatus.SUCCEEDED) break;
    }
    await done;
    const text = await outputText(s.jobs, jobId);
    expect(snapshotText.length).toBeGreaterThan(0);
    expect(results.length).toBeGreaterThan(0);
    expect(results.every((r) => r === "applied")).toBe(true);
    expect(held!.text).toBe(text);
  });

  test("a job cancelled mid-stream keeps what it had streamed", async () => {
    const { data: stream, response } = await s
      .openai()
      .chat.completions.create({ model: "synthetic", messages: [{ role: "user", content: "stop me" }], stream: true })
      .withResponse();
    const jobId = response.headers.get("x-studio-job-id")!;
    let got = "";
    for await (const chunk of stream) {
      got += chunk.choices[0]?.delta.content ?? "";
      if (got.split(" ").length >= 3) break;
    }
    const job = await watchJob(s.jobs, jobId);
    expect(job.status).toBe(JobStatus.CANCELLED);
    const kept = (await s.jobs.getJob({ jobId })).job!.streamedText!;
    expect(kept.text.startsWith(got)).toBe(true);
    expect(kept.attempt).toBe(1);
  });
});

describe("across two replicas on PostgreSQL", () => {
  let a: TestStudio;
  let b: TestStudio;
  let worker: WorkerProcess;
  beforeAll(async () => {
    const databaseUrl = await freshPgDatabase();
    [a, b] = await Promise.all([startTestStudio({ databaseUrl }), startTestStudio({ databaseUrl })]);
    worker = startSlowSyntheticWorker({ server: b.url, token: "open", name: "on-b", stepMs: STEP_MS });
    await worker.waitForLog((l) => l.msg === "connected to the studio");
  });
  afterAll(async () => {
    await worker?.stop();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  test("an OpenAI client on A gets the pieces of a job whose worker is on B as they come", async () => {
    const client = new OpenAI({ apiKey: "open", baseURL: `${a.url}/v1`, maxRetries: 0 });
    const { data: stream, response } = await client.chat.completions
      .create({ model: "synthetic", messages: [{ role: "user", content: "across" }], stream: true })
      .withResponse();
    const jobId = response.headers.get("x-studio-job-id")!;
    const jobsA = createClient(JobService, transportFor(a.url, undefined));
    const pieces: string[] = [];
    let statusAtFirst: JobStatus | undefined;
    for await (const chunk of stream) {
      const content = chunk.choices[0]?.delta.content;
      if (!content) continue;
      pieces.push(content);
      if (pieces.length === 1) statusAtFirst = (await jobsA.getJob({ jobId })).job!.status;
    }
    expect(statusAtFirst).toBe(JobStatus.RUNNING);
    expect(pieces.length).toBeGreaterThan(5);
    expect(pieces.join("")).toBe(await outputText(jobsA, jobId));
    expect((await jobsA.getJob({ jobId })).job!.workerName).toBe("on-b");
  });
});
