import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { createHash } from "node:crypto";
import { TaskSchema, type Task } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import { SimWorker, h2Transport } from "../dispatch/sim-worker.js";
import { sqliteOf, startTestStudio, type TestStudio } from "../helpers/test-studio.js";

/**
 * Issue 16, item 8: a worker picked its outputs' media type and any type/subtype was served inline
 * from the studio's origin, so a text/html or image/svg+xml output ran script there. Now each task
 * kind has a fixed set (image/png, image/jpeg, image/webp for images; application/json for text),
 * others are refused at upload, and outputs are served sandboxed (attachments unless an image).
 */

const SCRIPT = new TextEncoder().encode("<svg xmlns='http://www.w3.org/2000/svg' onload='alert(document.domain)'/>");
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const image = (prompt: string): Task => create(TaskSchema, { kind: { case: "image", value: { prompt, seed: 1n } } });
const text = (prompt: string): Task => create(TaskSchema, { kind: { case: "text", value: { prompt } } });

let t: TestStudio;
let jobs: Client<typeof JobService>;
let poller: Client<typeof WorkerService>;
beforeAll(async () => {
  t = await startTestStudio();
  jobs = t.client(JobService);
  poller = t.client(WorkerService);
});
afterAll(() => t.stop());

async function claim(task: Task) {
  const { job } = await jobs.createJob({ model: "synthetic", task, maxAttempts: 1 });
  const { claim } = await poller.claimJob({ workerName: "types", engines: [ModelEngine.SYNTHETIC] });
  expect(claim?.jobId).toBe(job!.id);
  return { jobId: claim!.jobId, leaseId: claim!.leaseId };
}

const completeWith = (lease: { jobId: string; leaseId: string }, mimeType: string, data: Uint8Array) =>
  poller.completeJob({ ...lease, outputs: [{ index: 0, mimeType, data, sha256: sha(data) }] }).then(
    () => "ok",
    (e: unknown) => `${Code[ConnectError.from(e).code]}: ${ConnectError.from(e).rawMessage}`,
  );

describe("output media types per task kind", () => {
  test("an image job refuses text/html and image/svg+xml (polling complete); a text job refuses image/png", async () => {
    const lease = await claim(image("html"));
    expect(await completeWith(lease, "text/html", SCRIPT)).toStartWith('InvalidArgument: output 0: mime_type "text/html" is not allowed');
    expect(await completeWith(lease, "image/svg+xml", SCRIPT)).toContain("image/png, image/jpeg, image/webp");
    expect(await completeWith(lease, "image/webp", new Uint8Array([1, 2]))).toBe("ok");
    const textLease = await claim(text("json please"));
    expect(await completeWith(textLease, "image/png", new Uint8Array([1]))).toContain("use one of application/json");
    expect(await completeWith(textLease, "application/json", new TextEncoder().encode('{"text":"hi"}'))).toBe("ok");
  });

  test("a streaming worker's upload of text/html is refused at its first chunk; a PNG then completes the job", async () => {
    const w = await SimWorker.connect(h2Transport(t.url));
    try {
      const { job } = await jobs.createJob({ model: "synthetic", task: image("stream html"), maxAttempts: 1 });
      const offer = await w.nextOffer();
      expect(offer.jobId).toBe(job!.id);
      w.upload(offer, 0, SCRIPT, { mimeType: "text/html" });
      const refused = await w.receipt(offer.jobId, offer.leaseId);
      expect(refused.ok).toBe(false);
      expect(refused.message).toContain('mime_type "text/html" is not allowed');
      w.upload(offer, 0, new Uint8Array([9, 9]), { mimeType: "image/png" });
      expect((await w.complete(offer)).ok).toBe(true);
    } finally {
      await w.close();
    }
  });
});

describe("serving outputs", () => {
  test("images are inline but sandboxed; anything else (a stored text/html output included) is a sandboxed attachment", async () => {
    const png = await claim(image("served png"));
    expect(await completeWith(png, "image/png", new Uint8Array([1, 2, 3]))).toBe("ok");
    const json = await claim(text("served json"));
    expect(await completeWith(json, "application/json", new TextEncoder().encode('{"text":"x"}'))).toBe("ok");
    // An output stored before uploads were restricted (or written by hand) keeps its old type.
    const legacy = await claim(image("legacy html"));
    expect(await completeWith(legacy, "image/png", SCRIPT)).toBe("ok");
    sqliteOf(t.studio).run("UPDATE graphicsJobs SET outputs = replace(outputs, 'image/png', 'text/html') WHERE id = ?", [legacy.jobId]);

    const get = (jobId: string) => fetch(`${t.url}/jobs/${jobId}/outputs/0`);
    const a = await get(png.jobId);
    expect(a.headers.get("content-type")).toBe("image/png");
    expect(a.headers.get("content-security-policy")).toBe("sandbox");
    expect(a.headers.get("content-disposition")).toBeNull();
    const b = await get(json.jobId);
    expect(b.headers.get("content-security-policy")).toBe("sandbox");
    expect(b.headers.get("content-disposition")).toStartWith("attachment");
    const c = await get(legacy.jobId);
    expect(c.headers.get("content-type")).toBe("text/html");
    expect(c.headers.get("content-security-policy")).toBe("sandbox");
    expect(c.headers.get("content-disposition")).toStartWith("attachment");
    expect(c.headers.get("x-content-type-options")).toBe("nosniff");
  });
});
