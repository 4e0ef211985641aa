import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { JobStatus, TaskSchema, type Task } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole, ModelSourceSchema } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { codeOf } from "../helpers/rpc-error.js";
import { sqliteOf, startTestStudio, type TestStudio } from "../helpers/test-studio.js";

const imageTask = (prompt = "a red fox", extra: Record<string, unknown> = {}): Task =>
  create(TaskSchema, { kind: { case: "image", value: { prompt, ...extra } } });

const sdSource = (url: string, steps = 8) =>
  create(ModelSourceSchema, {
    engine: ModelEngine.SD_CPP,
    files: [{ role: ModelFileRole.DIFFUSION_MODEL, url, filename: "m.gguf", approxBytes: 10n }],
    cliDefaults: { steps },
  });

let t: TestStudio;
let jobs: Client<typeof JobService>;
let registry: Client<typeof RegistryService>;
const rowCount = () => (sqliteOf(t.studio).query("SELECT count(*) AS n FROM graphicsJobs").get() as { n: number }).n;
const setStatus = (id: string, status: string) =>
  sqliteOf(t.studio).run("UPDATE graphicsJobs SET status = ?, error = 'boom', attempts = 3, outputs = '[{\"index\":0}]' WHERE id = ?", [status, id]);

beforeEach(async () => {
  // A clock that moves one millisecond per reading, so that creation order is total and deterministic.
  let tick = 0;
  t = await startTestStudio({}, { now: () => 1_800_000_000_000 + ++tick });
  jobs = t.client(JobService);
  registry = t.client(RegistryService);
});
afterEach(() => t.stop());

describe("CreateJob", () => {
  test("creates sent together are committed together yet answered one by one: a refused one fails alone, a repeated key names one job", async () => {
    const calls = [
      ...Array.from({ length: 20 }, (_, i) => jobs.createJob({ model: "synthetic", task: imageTask(`fox ${i}`) })),
      jobs.createJob({ model: "ghost", task: imageTask() }),
      jobs.createJob({ model: "synthetic", task: imageTask("same"), idempotencyKey: "twice" }),
      jobs.createJob({ model: "synthetic", task: imageTask("same"), idempotencyKey: "twice" }),
    ];
    const settled = await Promise.allSettled(calls);
    const ok = settled.slice(0, 20).map((r) => (r.status === "fulfilled" ? r.value : undefined));
    expect(ok.every((r) => r?.created === true && r.job?.status === JobStatus.QUEUED)).toBe(true);
    expect(new Set(ok.map((r) => r!.job!.id)).size).toBe(20);
    expect(ok.map((r) => r!.job!.task?.kind.value?.prompt)).toEqual(Array.from({ length: 20 }, (_, i) => `fox ${i}`));
    const ghost = settled[20]!;
    expect(ghost.status === "rejected" && ConnectError.from(ghost.reason).code).toBe(Code.InvalidArgument);
    const [first, second] = settled.slice(21).map((r) => (r.status === "fulfilled" ? r.value : undefined));
    expect(first!.job!.id).toBe(second!.job!.id);
    expect([first!.created, second!.created].sort()).toEqual([false, true]);
    expect(rowCount()).toBe(21);
    // Every answered job is readable afterwards, as stored.
    for (const r of ok) expect((await jobs.getJob({ jobId: r!.job!.id })).job).toEqual(r!.job!);
  });

  test("queues a job with the resolved source, a recorded seed and default attempts", async () => {
    const { job, created } = await jobs.createJob({ model: "synthetic", task: imageTask(), priority: 3 });
    expect(created).toBe(true);
    expect(job!.status).toBe(JobStatus.QUEUED);
    expect(job!.priority).toBe(3);
    expect(job!.maxAttempts).toBe(3);
    expect(job!.modelSource?.engine).toBe(ModelEngine.SYNTHETIC);
    const seed = job!.task!.kind.case === "image" ? job!.task!.kind.value.seed : undefined;
    expect(seed).toBeDefined();
    expect(seed! >= 0n && seed! < 2n ** 31n).toBe(true);
    const row = sqliteOf(t.studio).query("SELECT engine, modelSource FROM graphicsJobs WHERE id = ?").get(job!.id) as {
      engine: string;
      modelSource: string;
    };
    expect(row.engine).toBe("synthetic");
    expect(JSON.parse(row.modelSource).engine).toBe("synthetic");
  });

  test("keeps a seed the client set and honours max_attempts", async () => {
    const { job } = await jobs.createJob({ model: "synthetic", task: imageTask("x", { seed: 42n }), maxAttempts: 7 });
    expect(job!.task!.kind.value!.seed).toBe(42n);
    expect(job!.maxAttempts).toBe(7);
  });

  test("the same idempotency key with the same request returns the same job", async () => {
    const a = await jobs.createJob({ model: "synthetic", task: imageTask(), idempotencyKey: "k-1", priority: 3, maxAttempts: 2 });
    const b = await jobs.createJob({ model: "synthetic", task: imageTask(), idempotencyKey: "k-1", priority: 3, maxAttempts: 2 });
    expect(a.created).toBe(true);
    expect(b.created).toBe(false);
    expect(b.job!.id).toBe(a.job!.id);
    expect(b.job!.idempotencyKey).toBe("k-1");
    // With an explicit seed: the same seed is the same request, another seed is not.
    const s = await jobs.createJob({ model: "synthetic", task: imageTask("p", { seed: 7n }), idempotencyKey: "k-seed" });
    const again = await jobs.createJob({ model: "synthetic", task: imageTask("p", { seed: 7n }), idempotencyKey: "k-seed" });
    expect(again.created).toBe(false);
    expect(again.job!.id).toBe(s.job!.id);
    const other = await codeOf(jobs.createJob({ model: "synthetic", task: imageTask("p", { seed: 8n }), idempotencyKey: "k-seed" }));
    expect(other.code).toBe(Code.AlreadyExists);
    expect(rowCount()).toBe(2);
  });

  test("the same idempotency key with a different request is ALREADY_EXISTS naming the key and what differs", async () => {
    const base = { model: "synthetic", task: imageTask(), idempotencyKey: "k-2", priority: 3, maxAttempts: 2 };
    const { job } = await jobs.createJob(base);
    await registry.createModel({ name: "m2", source: sdSource("http://127.0.0.1:9/m2.gguf", 8) });
    const cases: [Parameters<typeof jobs.createJob>[0], string[]][] = [
      [{ ...base, task: imageTask("other") }, ["task"]],
      [{ ...base, model: "m2" }, ['model ("synthetic", now "m2")']],
      [{ ...base, priority: 4 }, ["priority (3, now 4)"]],
      [{ ...base, maxAttempts: 5 }, ["max_attempts (2, now 5)"]],
      [{ ...base, priority: 0, maxAttempts: 1, task: imageTask("p", { batchCount: 2 }) }, ["task", "priority", "max_attempts"]],
    ];
    for (const [req, named] of cases) {
      const { code, message } = await codeOf(jobs.createJob(req));
      expect(code).toBe(Code.AlreadyExists);
      expect(message).toContain('idempotency_key: "k-2"');
      expect(message).toContain(job!.id);
      for (const n of named) expect(message).toContain(n);
    }
    expect(rowCount()).toBe(1);
  });

  test("missing and disabled models are INVALID_ARGUMENT naming the model, and nothing is written", async () => {
    const missing = await codeOf(jobs.createJob({ model: "no-such-model", task: imageTask() }));
    expect(missing.code).toBe(Code.InvalidArgument);
    expect(missing.message).toContain('"no-such-model"');
    await registry.setModelEnabled({ name: "synthetic", enabled: false });
    const disabled = await codeOf(jobs.createJob({ model: "synthetic", task: imageTask(), idempotencyKey: "k" }));
    expect(disabled.code).toBe(Code.InvalidArgument);
    expect(disabled.message).toContain('"synthetic" is disabled');
    expect(rowCount()).toBe(0);
  });

  test("validation errors name each field", async () => {
    const cases: [Parameters<typeof jobs.createJob>[0], string][] = [
      [{ model: "", task: imageTask() }, "model: must not be empty"],
      [{ model: "bad name!", task: imageTask() }, "model: must start with"],
      [{ model: "synthetic" }, "task: must set image or text"],
      [{ model: "synthetic", task: imageTask("") }, "task.image.prompt: must not be empty"],
      [{ model: "synthetic", task: imageTask("p", { batchCount: 99 }) }, "task.image.batch_count"],
      [{ model: "synthetic", task: imageTask("p", { overrides: { width: 100 } }) }, "task.image.overrides.width"],
      [{ model: "synthetic", task: imageTask(), priority: 5000 }, "priority: must be from -1000 to 1000"],
      [{ model: "synthetic", task: imageTask(), maxAttempts: 101 }, "max_attempts"],
      [{ model: "synthetic", task: imageTask(), idempotencyKey: "k".repeat(300) }, "idempotency_key"],
    ];
    for (const [req, field] of cases) {
      const { code, message } = await codeOf(jobs.createJob(req));
      expect(code).toBe(Code.InvalidArgument);
      expect(message).toContain(field);
    }
    expect(rowCount()).toBe(0);
  });

  test("LoRA tags may only name the model's own LoRA files (create and promote), the negative prompt none", async () => {
    const withLora = create(ModelSourceSchema, {
      engine: ModelEngine.SD_CPP,
      files: [
        { role: ModelFileRole.DIFFUSION_MODEL, url: "http://127.0.0.1:9/m.gguf", filename: "m.gguf" },
        { role: ModelFileRole.LORA, url: "http://127.0.0.1:9/style.safetensors", filename: "style.safetensors" },
      ],
    });
    await registry.createModel({ name: "with-lora", source: withLora });
    await registry.createModel({ name: "plain", source: sdSource("http://127.0.0.1:9/a.gguf") });
    const traversal = await codeOf(jobs.createJob({ model: "with-lora", task: imageTask("a fox <lora:../../x:1>") }));
    expect(traversal.code).toBe(Code.InvalidArgument);
    expect(traversal.message).toContain(`task.image.prompt: "<lora:../../x:1>" names "../../x", which is not a lora file of the model`);
    expect(traversal.message).toContain(`(model "with-lora")`);
    const negative = await codeOf(jobs.createJob({ model: "with-lora", task: imageTask("a fox", { negativePrompt: "<lora:../../x:1>" }) }));
    expect(negative.message).toContain("task.image.negative_prompt: must not hold a LoRA tag");
    expect(rowCount()).toBe(0);
    const ok = (await jobs.createJob({ model: "with-lora", task: imageTask("a fox <lora:style:0.5>") })).job!;
    // Promoted to a model without that LoRA, the same prompt names a file the model lacks.
    const promoted = await codeOf(jobs.promoteJob({ jobId: ok.id, model: "plain" }));
    expect(promoted.code).toBe(Code.InvalidArgument);
    expect(promoted.message).toContain("(the model has no lora files)");
    expect(rowCount()).toBe(1);
    // A retry resolves the model again: once its LoRA is gone, the task no longer fits it.
    await registry.updateModel({ name: "with-lora", source: sdSource("http://127.0.0.1:9/a.gguf") });
    setStatus(ok.id, "FAILED");
    const retried = await codeOf(jobs.retryJob({ jobId: ok.id }));
    expect(retried.code).toBe(Code.FailedPrecondition);
    expect(retried.message).toContain(`"<lora:style:0.5>" names "style"`);
    expect(retried.message).toContain("promote job");
  });
});

describe("resolve at write time", () => {
  test("a registry edit after queueing does not change the queued job; retry resolves again", async () => {
    await registry.createModel({ name: "m1", source: sdSource("http://127.0.0.1:9/a.gguf", 8) });
    const { job } = await jobs.createJob({ model: "m1", task: imageTask() });
    await registry.updateModel({ name: "m1", source: sdSource("http://127.0.0.1:9/b.gguf", 20) });
    const after = (await jobs.getJob({ jobId: job!.id })).job!;
    expect(after.modelSource!.files[0]!.url).toBe("http://127.0.0.1:9/a.gguf");
    expect(after.modelSource!.cliDefaults!.steps).toBe(8);

    setStatus(job!.id, "FAILED");
    const retried = (await jobs.retryJob({ jobId: job!.id })).job!;
    expect(retried.status).toBe(JobStatus.QUEUED);
    expect(retried.attempts).toBe(0);
    expect(retried.error).toBe("");
    expect(retried.outputs).toEqual([]);
    expect(retried.modelSource!.files[0]!.url).toBe("http://127.0.0.1:9/b.gguf");
    expect(retried.modelSource!.cliDefaults!.steps).toBe(20);
  });

  test("promote resolves the new model; the original is untouched", async () => {
    await registry.createModel({ name: "m2", source: sdSource("http://127.0.0.1:9/m2.gguf") });
    const { job } = await jobs.createJob({ model: "synthetic", task: imageTask("fox", { seed: 5n }), priority: -4 });
    const promoted = (await jobs.promoteJob({ jobId: job!.id, model: "m2" })).job!;
    expect(promoted.id).not.toBe(job!.id);
    expect(promoted.model).toBe("m2");
    expect(promoted.promotedFrom).toBe(job!.id);
    expect(promoted.priority).toBe(100);
    expect(promoted.status).toBe(JobStatus.QUEUED);
    expect(promoted.task).toEqual(job!.task);
    expect(promoted.modelSource!.engine).toBe(ModelEngine.SD_CPP);
    const original = (await jobs.getJob({ jobId: job!.id })).job!;
    expect(original).toEqual(job!);
  });

  test("promote and retry to a missing or disabled model write nothing", async () => {
    const { job } = await jobs.createJob({ model: "synthetic", task: imageTask() });
    const p = await codeOf(jobs.promoteJob({ jobId: job!.id, model: "ghost" }));
    expect(p.code).toBe(Code.InvalidArgument);
    expect(p.message).toContain('"ghost"');
    expect(rowCount()).toBe(1);
    setStatus(job!.id, "CANCELLED");
    await registry.setModelEnabled({ name: "synthetic", enabled: false });
    const r = await codeOf(jobs.retryJob({ jobId: job!.id }));
    expect(r.code).toBe(Code.InvalidArgument);
    expect(r.message).toContain('"synthetic"');
    expect((await jobs.getJob({ jobId: job!.id })).job!.status).toBe(JobStatus.CANCELLED);
  });
});

describe("retry re-checks the task against the model's engine", () => {
  test("after the model moved to an engine that cannot run the task, RetryJob is refused (FAILED_PRECONDITION) and writes nothing", async () => {
    await registry.createModel({ name: "m-switch", source: sdSource("http://127.0.0.1:9/s.gguf") });
    const { job } = await jobs.createJob({ model: "m-switch", task: imageTask("fox") });
    setStatus(job!.id, "FAILED");
    await registry.updateModel({
      name: "m-switch",
      source: { engine: ModelEngine.LLAMA_CPP, files: [{ role: ModelFileRole.MODEL, filename: "t.gguf", url: "http://127.0.0.1:9/t.gguf" }] },
    });
    const before = (await jobs.getJob({ jobId: job!.id })).job!;
    const r = await codeOf(jobs.retryJob({ jobId: job!.id }));
    expect(r.code).toBe(Code.FailedPrecondition);
    expect(r.message).toContain('model "m-switch" runs llama-cpp, which takes text tasks (got an image task)');
    expect(r.message).toContain(`promote job "${job!.id}"`);
    expect((await jobs.getJob({ jobId: job!.id })).job!).toEqual(before);
    // Promoting to a model that takes image tasks is the way out.
    const promoted = (await jobs.promoteJob({ jobId: job!.id, model: "synthetic" })).job!;
    expect(promoted.status).toBe(JobStatus.QUEUED);
  });
});

describe("state changes", () => {
  test("cancel moves QUEUED/OFFERED/RUNNING to CANCELLED, clears the lease, publishes the old lease", async () => {
    const changes: unknown[] = [];
    const off = t.studio.ctx.events.subscribe((c) => changes.push(c));
    for (const status of ["QUEUED", "OFFERED", "RUNNING"]) {
      const { job } = await jobs.createJob({ model: "synthetic", task: imageTask() });
      if (status !== "QUEUED")
        sqliteOf(t.studio).run(
          "UPDATE graphicsJobs SET status = ?, leaseId = 'L1', leaseWorker = 'w1', leaseExpiresAt = 1 WHERE id = ?",
          [status, job!.id],
        );
      const cancelled = (await jobs.cancelJob({ jobId: job!.id })).job!;
      expect(cancelled.status).toBe(JobStatus.CANCELLED);
      expect(cancelled.workerName).toBe("");
      expect(cancelled.leaseExpireTime).toBeUndefined();
      expect(cancelled.finishTime).toBeDefined();
      if (status !== "QUEUED")
        expect(changes.at(-1)).toEqual({
          jobId: job!.id,
          status: "CANCELLED",
          model: "synthetic",
          leaseWorker: "w1",
          leaseId: "L1",
          job: expect.objectContaining({ status: "CANCELLED", leaseId: null, finishedAt: expect.any(Number) }),
        });
    }
    off();
  });

  test("terminal jobs cannot be cancelled; only FAILED/CANCELLED can be retried; unknown ids are NOT_FOUND", async () => {
    const { job } = await jobs.createJob({ model: "synthetic", task: imageTask() });
    expect((await codeOf(jobs.retryJob({ jobId: job!.id }))).code).toBe(Code.FailedPrecondition);
    setStatus(job!.id, "SUCCEEDED");
    expect((await codeOf(jobs.cancelJob({ jobId: job!.id }))).code).toBe(Code.FailedPrecondition);
    expect((await codeOf(jobs.retryJob({ jobId: job!.id }))).code).toBe(Code.FailedPrecondition);
    for (const call of [
      jobs.getJob({ jobId: "nope" }),
      jobs.cancelJob({ jobId: "nope" }),
      jobs.retryJob({ jobId: "nope" }),
      jobs.promoteJob({ jobId: "nope", model: "synthetic" }),
    ])
      expect((await codeOf(call)).code).toBe(Code.NotFound);
    expect((await codeOf(jobs.getJob({ jobId: "" }))).message).toContain("job_id: must not be empty");
  });
});

describe("ListJobs", () => {
  test("newest first, filtered, paged with an opaque token", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await jobs.createJob({ model: "synthetic", task: imageTask(`p${i}`) })).job!.id);
    setStatus(ids[2]!, "FAILED");
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const page = await jobs.listJobs({ pageSize: 3, pageToken: token });
      seen.push(...page.jobs.map((j) => j.id));
      token = page.nextPageToken;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());
    const failed = await jobs.listJobs({ statuses: [JobStatus.FAILED] });
    expect(failed.jobs.map((j) => j.id)).toEqual([ids[2]!]);
    expect((await jobs.listJobs({ model: "other" })).jobs).toEqual([]);
    expect((await jobs.listJobs({})).jobs.length).toBe(7);
  });

  test("bad tokens and statuses are INVALID_ARGUMENT", async () => {
    for (const pageToken of ["%%%", "abc", Buffer.from('{"v":1,"c":"x","i":"y"}').toString("base64url")]) {
      const { code, message } = await codeOf(jobs.listJobs({ pageToken }));
      expect(code).toBe(Code.InvalidArgument);
      expect(message).toContain("page_token");
    }
    const { message } = await codeOf(jobs.listJobs({ statuses: [JobStatus.UNSPECIFIED] }));
    expect(message).toContain("statuses[0]");
  });
});

describe("legacy rows", () => {
  test("NULL and malformed modelSource read back without a source and never crash", async () => {
    const { job } = await jobs.createJob({ model: "synthetic", task: imageTask() });
    const insert = sqliteOf(t.studio).prepare(
      "INSERT INTO graphicsJobs (id, model, status, priority, task, modelSource, createdAt, updatedAt) VALUES (?, 'old', 'QUEUED', 0, ?, ?, ?, ?)",
    );
    insert.run("legacy-null", '{"image":{"prompt":"old"}}', null, 1, 1);
    insert.run("legacy-bad", "{not json", "{not json either", 2, 2);
    insert.run("legacy-wrong", '{"image":{"prompt":"old"}}', '{"engine":"warp-drive","files":[]}', 3, 3);
    for (const id of ["legacy-null", "legacy-bad", "legacy-wrong"]) {
      const got = (await jobs.getJob({ jobId: id })).job!;
      expect(got.modelSource).toBeUndefined();
      expect(got.model).toBe("old");
    }
    const list = await jobs.listJobs({});
    expect(list.jobs.map((j) => j.id)).toEqual([job!.id, "legacy-wrong", "legacy-bad", "legacy-null"]);
    expect(list.jobs.slice(1).every((j) => j.modelSource === undefined)).toBe(true);
    const p = await codeOf(jobs.promoteJob({ jobId: "legacy-bad", model: "synthetic" }));
    expect(p.code).toBe(Code.InvalidArgument);
    const promoted = (await jobs.promoteJob({ jobId: "legacy-null", model: "synthetic" })).job!;
    expect(promoted.modelSource?.engine).toBe(ModelEngine.SYNTHETIC);
  });
});

describe("hand-edited registry rows", () => {
  test("a stored source that no longer validates resolves to nothing and reads back without a source", async () => {
    sqliteOf(t.studio).run(
      "INSERT INTO studioModels (name, enabled, engine, source, createdAt, updatedAt) VALUES ('broken', 1, 'sd-cpp', '{\"engine\":\"sd-cpp\",\"files\":[]}', 1, 1)",
    );
    const create = await codeOf(jobs.createJob({ model: "broken", task: imageTask() }));
    expect(create.code).toBe(Code.InvalidArgument);
    expect(create.message).toContain('"broken" has a stored source that does not validate');
    expect(rowCount()).toBe(0);
    const model = (await registry.getModel({ name: "broken" })).model!;
    expect(model.source).toBeUndefined();
    expect((await codeOf(registry.verifyModel({ target: { case: "name", value: "broken" } }))).code).toBe(Code.FailedPrecondition);
  });
});

describe("transports", () => {
  test("the same calls work over Connect binary, gRPC-Web and gRPC", async () => {
    for (const transport of [t.connectTransport({ binary: true }), t.grpcWebTransport(), t.grpcTransport()]) {
      const c = t.client(JobService, transport);
      const { job } = await c.createJob({ model: "synthetic", task: imageTask() });
      expect((await c.getJob({ jobId: job!.id })).job!.id).toBe(job!.id);
      expect((await codeOf(c.getJob({ jobId: "missing" }))).code).toBe(Code.NotFound);
    }
  });
});
