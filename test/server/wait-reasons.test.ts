import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createClient } from "@connectrpc/connect";
import { JobStatus, WaitReason, type Job } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import { SimWorker, h2Transport } from "../dispatch/sim-worker.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";

/**
 * Every queued job says why it waits, in every read (CreateJob's and CreateJobs' replies, GetJob, ListJobs, WatchJobs):
 * no worker runs its engine (and how many workers there are), every capable worker is busy (and its
 * place in line), or its model was disabled after it was queued (and dispatch holds it). A watch
 * sends a queued job again when its wait changes, with no change to the job itself.
 */
let t: TestStudio;
/** The studio's clock runs ahead by this much: a test moves it on to make the next read take a fresh look. */
let skew = 0;
const later = () => (skew += 2000);
beforeAll(async () => {
  t = await startTestStudio({}, { now: () => Date.now() + skew });
});
afterAll(async () => {
  await t.stop();
});

const image = (prompt: string) => ({ kind: { case: "image" as const, value: { prompt } } });

describe("waiting reasons", () => {
  test("no worker, no capable worker, busy workers with places in line; ListJobs and GetJob agree", async () => {
    const jobs = t.client(JobService);
    const first = (await jobs.createJob({ model: "synthetic", task: image("one") })).job!;
    expect(first.waiting).toMatchObject({
      reason: WaitReason.NO_CAPABLE_WORKER,
      message: "no connected worker runs synthetic (no worker is connected)",
      engine: "synthetic",
      capableWorkers: 0,
      connectedWorkers: 0,
      queuePosition: 1,
    });
    const second = (await jobs.createJob({ model: "synthetic", task: image("two") })).job!;
    const image1024 = (await jobs.createJob({ model: "z-image-turbo", task: image("big") })).job!;

    const w = await SimWorker.connect(h2Transport(t.url), { name: "synth-only", engines: [ModelEngine.SYNTHETIC] });
    try {
      const offer = await w.nextOffer();
      expect(offer.jobId).toBe(first.id);
      // The worker holds the first job: the second waits for its slot; the sd-cpp job has nobody.
      later();
      const busy = (await jobs.getJob({ jobId: second.id })).job!;
      expect(busy.waiting).toMatchObject({
        reason: WaitReason.WORKERS_BUSY,
        message: "the 1 worker that runs synthetic is busy; 1st in line",
        capableWorkers: 1,
        connectedWorkers: 1,
        queuePosition: 1,
      });
      const nobody = (await jobs.getJob({ jobId: image1024.id })).job!;
      expect(nobody.waiting).toMatchObject({
        reason: WaitReason.NO_CAPABLE_WORKER,
        message: "no connected worker runs sd-cpp (1 worker connected, running synthetic)",
        capableWorkers: 0,
        connectedWorkers: 1,
      });
      const listed = (await jobs.listJobs({})).jobs;
      const byId = new Map(listed.map((j) => [j.id, j]));
      expect(byId.get(second.id)!.waiting?.reason).toBe(WaitReason.WORKERS_BUSY);
      expect(byId.get(first.id)!.status).toBe(JobStatus.OFFERED);
      expect(byId.get(first.id)!.waiting).toBeUndefined();
      w.upload(offer, 0, new Uint8Array([1]), { mimeType: "image/png" });
      await w.complete(offer);
      const next = await w.nextOffer();
      expect(next.jobId).toBe(second.id);
      w.upload(next, 0, new Uint8Array([1]), { mimeType: "image/png" });
      await w.complete(next);
    } finally {
      await w.close();
      await jobs.cancelJob({ jobId: image1024.id });
    }
  }, 20_000);

  test("a model disabled after its job was queued holds the job, the watch says so without a job change, and enabling releases it", async () => {
    const jobs = t.client(JobService);
    const registry = t.client(RegistryService);
    await registry.createModel({ name: "held-synth", enabled: true, source: { engine: ModelEngine.SYNTHETIC, cliDefaults: { steps: 1 } } });
    const w = await SimWorker.connect(h2Transport(t.url), { name: "holder", engines: [ModelEngine.SYNTHETIC] });
    const abort = new AbortController();
    try {
      const blocker = (await jobs.createJob({ model: "synthetic", task: image("keeps the worker busy") })).job!;
      const blockerOffer = await w.nextOffer();
      expect(blockerOffer.jobId).toBe(blocker.id);
      const held = (await jobs.createJob({ model: "held-synth", task: image("held") })).job!;

      const seen: Job[] = [];
      const watch = jobs.watchJobs({ jobIds: [held.id], includeSnapshot: true }, { signal: abort.signal })[Symbol.asyncIterator]();
      const nextSeen = async () => {
        const r = await watch.next();
        if (r.done) throw new Error("the watch ended");
        seen.push(r.value.job!);
        return r.value.job!;
      };
      expect((await nextSeen()).waiting?.reason).toBe(WaitReason.WORKERS_BUSY);

      await registry.setModelEnabled({ name: "held-synth", enabled: false });
      let now = await nextSeen();
      while (now.waiting?.reason !== WaitReason.MODEL_DISABLED) now = await nextSeen();
      expect(now.status).toBe(JobStatus.QUEUED);
      expect(now.waiting!.message).toBe(
        "model held-synth was disabled after this job was queued: it waits until an admin enables the model again (or the job is cancelled)",
      );
      expect(now.updateTime).toEqual(held.updateTime);

      // The worker frees up: a later synthetic job goes ahead of the held one.
      const after = (await jobs.createJob({ model: "synthetic", task: image("later") })).job!;
      w.upload(blockerOffer, 0, new Uint8Array([1]), { mimeType: "image/png" });
      await w.complete(blockerOffer);
      const laterOffer = await w.nextOffer();
      expect(laterOffer.jobId).toBe(after.id);
      w.upload(laterOffer, 0, new Uint8Array([1]), { mimeType: "image/png" });
      await w.complete(laterOffer);
      expect((await jobs.getJob({ jobId: held.id })).job!.status).toBe(JobStatus.QUEUED);

      await registry.setModelEnabled({ name: "held-synth", enabled: true });
      const heldOffer = await w.nextOffer();
      expect(heldOffer.jobId).toBe(held.id);
      while ((await nextSeen()).status === JobStatus.QUEUED);
      expect(seen.at(-1)!.waiting).toBeUndefined();
    } finally {
      abort.abort();
      await w.close();
    }
  }, 20_000);

  test("CreateJobs' answers say why their jobs wait, as CreateJob's reply does", async () => {
    const jobs = t.client(JobService);
    later();
    const answers = [];
    // A bidirectional stream: HTTP/2.
    for await (const res of createClient(JobService, h2Transport(t.url)).createJobs((async function* () {
      yield { jobs: [{ model: "z-image-turbo", task: image("nobody runs sd-cpp here") }] };
    })()))
      answers.push(...res.answers);
    const job = answers[0]!.result!.job!;
    try {
      expect(job.status).toBe(JobStatus.QUEUED);
      expect(job.waiting).toMatchObject({ reason: WaitReason.NO_CAPABLE_WORKER, engine: "sd-cpp", capableWorkers: 0 });
      expect(job.waiting!.message).toStartWith("no connected worker runs sd-cpp");
    } finally {
      await jobs.cancelJob({ jobId: job.id });
    }
  });
});
