import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { JobStatus, TaskSchema, type Task } from "../../gen/studio/v1/job_pb.js";
import { CreateJobRequestSchema, CreateJobsRequestSchema, JobService, type CreateJobsAnswer, type CreateJobsRequest } from "../../gen/studio/v1/job_service_pb.js";
import { MAX_CREATES_IN_FLIGHT } from "../../server/jobs/create-jobs-stream.js";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";

const imageTask = (prompt: string, extra: Record<string, unknown> = {}): Task =>
  create(TaskSchema, { kind: { case: "image", value: { prompt, ...extra } } });
const request = (...jobs: MessageInitShape<typeof CreateJobRequestSchema>[]) => create(CreateJobsRequestSchema, { jobs });

let t: TestStudio;
let jobs: Client<typeof JobService>;

beforeEach(async () => {
  t = await startTestStudio();
  jobs = t.client(JobService);
});
afterEach(() => t.stop());

const transports: Record<string, () => Transport> = {
  "connect (binary, HTTP/2)": () => createConnectTransport({ baseUrl: t.url, httpVersion: "2", useBinaryFormat: true }),
  "connect (JSON, HTTP/2)": () => createConnectTransport({ baseUrl: t.url, httpVersion: "2" }),
  grpc: () => createGrpcTransport({ baseUrl: t.url }),
};

describe("CreateJobs", () => {
  for (const [name, transport] of Object.entries(transports))
    test(`answers each request in order as CreateJob would, a refusal without ending the stream (${name})`, async () => {
      const stream = createClient(JobService, transport());
      const answers: CreateJobsAnswer[] = [];
      // One job alone, then two in one request, then three.
      const sent = [
        request({ model: "synthetic", task: imageTask("one", { seed: 5n }) }),
        request({ model: "no-such-model", task: imageTask("two") }, { model: "synthetic", task: imageTask("three"), idempotencyKey: "k1", priority: 7 }),
        request(
          { model: "synthetic", task: imageTask("three"), idempotencyKey: "k1", priority: 7 },
          { model: "synthetic" },
          { model: "synthetic", task: imageTask("six") },
        ),
      ];
      for await (const response of stream.createJobs((async function* () {
        yield* sent;
      })()))
        answers.push(...response.answers);
      expect(answers.map((a) => [a.result?.created ?? null, a.errorCode])).toEqual([
        [true, ""],
        [null, "invalid_argument"],
        [true, ""],
        [false, ""],
        [null, "invalid_argument"],
        [true, ""],
      ]);
      expect(answers[1]!.errorMessage).toContain("no-such-model");
      expect(answers[4]!.errorMessage).toContain("task");
      expect(answers[3]!.result!.job!.id).toBe(answers[2]!.result!.job!.id);
      const first = answers[0]!.result!.job!;
      expect(first).toMatchObject({ model: "synthetic", status: JobStatus.QUEUED });
      expect(first.task?.kind.value).toMatchObject({ prompt: "one", seed: 5n });
      expect(first.modelSource).toBeDefined();
      const stored = (await jobs.getJob({ jobId: answers[5]!.result!.job!.id })).job!;
      expect(stored.task?.kind.value).toMatchObject({ prompt: "six" });
      expect((await jobs.listJobs({})).jobs.map((j) => (j.task?.kind.value as { prompt: string }).prompt).sort()).toEqual(["one", "six", "three"]);
    });

  test(`a stream that keeps sending has every create answered, in order, past the ${MAX_CREATES_IN_FLIGHT} it holds unanswered`, async () => {
    const stream = createClient(JobService, transports["connect (binary, HTTP/2)"]!());
    const out = createWritableIterable<CreateJobsRequest>();
    const n = MAX_CREATES_IN_FLIGHT * 2 + 10;
    for (let i = 0; i < n; i += 3)
      void out.write(request(...Array.from({ length: Math.min(3, n - i) }, (_, k) => ({ model: "synthetic", task: imageTask(`p${i + k}`) }))));
    out.close();
    const prompts: string[] = [];
    let responses = 0;
    for await (const response of stream.createJobs(out)) {
      responses++;
      for (const a of response.answers) prompts.push((a.result!.job!.task!.kind.value as { prompt: string }).prompt);
    }
    expect(prompts).toEqual(Array.from({ length: n }, (_, i) => `p${i}`));
    // Answers that were ready together left together.
    expect(responses).toBeLessThan(n);
  });

  test(`a request with more than ${MAX_CREATES_IN_FLIGHT} jobs ends the stream with INVALID_ARGUMENT`, async () => {
    const stream = createClient(JobService, transports["connect (binary, HTTP/2)"]!());
    const jobs = Array.from({ length: MAX_CREATES_IN_FLIGHT + 1 }, (_, i) => ({ model: "synthetic", task: imageTask(`p${i}`) }));
    let err: unknown;
    try {
      for await (const _ of stream.createJobs((async function* () {
        yield request(...jobs);
      })()));
    } catch (e) {
      err = e;
    }
    expect(String(err)).toContain(`[invalid_argument] jobs: a CreateJobs request may carry at most ${MAX_CREATES_IN_FLIGHT} jobs`);
  });
});
