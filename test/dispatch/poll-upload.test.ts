import { afterEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createHash } from "node:crypto";
import { JobStatus } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { CompleteJobStreamRequestSchema, WorkerService, type CompleteJobStreamRequest } from "../../gen/studio/v1/worker_service_pb.js";
import { OUTPUT_CHUNK_BYTES } from "../../server/outputs/output-blobs.js";
import { startTestStudio, type TestStudio } from "../helpers/test-studio.js";
import { createJob, dispatchOf, rowOf } from "./fixtures.js";
import { h2Transport } from "./sim-worker.js";

/**
 * Issue 17: a polling worker uploads outputs of any size up to --max-output-bytes with the
 * client-streaming CompleteJobStream (OutputChunks, then the complete), over gRPC and Connect.
 */
const MiB = 1024 * 1024;
let t: TestStudio | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const bytes = (n: number, seed: number) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 12)) & 0xff;
  return b;
};

/** The chunk messages of one output, in order. */
function* chunks(lease: { jobId: string; leaseId: string }, index: number, data: Uint8Array, mimeType = "image/png") {
  for (let offset = 0; offset < data.byteLength || offset === 0; offset += OUTPUT_CHUNK_BYTES) {
    yield create(CompleteJobStreamRequestSchema, {
      message: {
        case: "outputChunk",
        value: { ...lease, index, mimeType, totalSize: BigInt(data.byteLength), sha256: sha(data), offset: BigInt(offset), data: data.subarray(offset, offset + OUTPUT_CHUNK_BYTES) },
      },
    });
    if (data.byteLength === 0) break;
  }
}

async function* stream(...parts: Iterable<CompleteJobStreamRequest>[]): AsyncGenerator<CompleteJobStreamRequest> {
  for (const p of parts) yield* p;
}

const completeMsg = (lease: { jobId: string; leaseId: string }, outputs: Array<{ index: number; data: Uint8Array }> = []) =>
  create(CompleteJobStreamRequestSchema, {
    message: { case: "complete", value: { ...lease, outputs: outputs.map((o) => ({ index: o.index, mimeType: "image/png", data: o.data, sha256: sha(o.data) })) } },
  });

async function claim(poller: Client<typeof WorkerService>, jobs: Client<typeof JobService>, batchCount = 1) {
  const job = await createJob(jobs, "synthetic", { batchCount });
  const { claim } = await poller.claimJob({ workerName: "poller", engines: [ModelEngine.SYNTHETIC], waitMs: 5000 });
  expect(claim?.jobId).toBe(job.id);
  return { jobId: job.id, leaseId: claim!.leaseId };
}

async function readOutput(jobs: Client<typeof JobService>, jobId: string, index: number): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const res of jobs.getJobOutput({ jobId, index })) parts.push(res.chunk);
  return Buffer.concat(parts);
}

async function codeOf(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error("expected the call to fail");
}

describe("CompleteJobStream (polling workers, large outputs)", () => {
  for (const protocol of ["grpc", "connect"] as const)
    test(`${protocol}: a 9 MiB output in chunks (over the 8 MiB a CompleteJob message may carry) and a small one inline commit the job`, async () => {
      t = await startTestStudio({ maxOutputBytes: 16 * MiB });
      const transport = protocol === "grpc" ? createGrpcTransport({ baseUrl: t.url }) : h2Transport(t.url);
      const poller = createClient(WorkerService, transport);
      const jobs = t.client(JobService);
      const lease = await claim(poller, jobs, 2);
      const big = bytes(9 * MiB + 123, 1);
      const small = bytes(300, 2);
      const { job } = await poller.completeJobStream(stream(chunks(lease, 0, big), [completeMsg(lease, [{ index: 1, data: small }])]));
      expect(job?.status).toBe(JobStatus.SUCCEEDED);
      expect(job?.outputs.map((o) => [o.index, Number(o.sizeBytes), o.sha256])).toEqual([
        [0, big.byteLength, sha(big)],
        [1, small.byteLength, sha(small)],
      ]);
      expect((await readOutput(jobs, lease.jobId, 0)).equals(Buffer.from(big))).toBe(true);
      expect((await readOutput(jobs, lease.jobId, 1)).equals(Buffer.from(small))).toBe(true);
    }, 60_000);

  test("refusals: over --max-output-bytes, no complete, a chunk of another lease, an index sent twice; nothing is committed or left staged", async () => {
    t = await startTestStudio({ maxOutputBytes: 2 * MiB });
    const poller = createClient(WorkerService, createGrpcTransport({ baseUrl: t.url }));
    const jobs = t.client(JobService);
    const lease = await claim(poller, jobs, 1);
    const staged = () => dispatchOf(t!).staging.of(lease.leaseId).size;

    const tooBig = await codeOf(poller.completeJobStream(stream(chunks(lease, 0, bytes(3 * MiB, 3)), [completeMsg(lease)])));
    expect(tooBig.code).toBe(Code.ResourceExhausted);
    expect(tooBig.message).toContain(`over the studio's limit of ${2 * MiB} bytes`);

    const noComplete = await codeOf(poller.completeJobStream(stream(chunks(lease, 0, bytes(MiB + 5, 4)))));
    expect(noComplete).toEqual({ code: Code.InvalidArgument, message: "the stream ended without a complete: nothing was committed" });
    expect(staged()).toBe(0);

    const other = { jobId: lease.jobId, leaseId: "not-this-lease" };
    const mixed = await codeOf(poller.completeJobStream(stream(chunks(lease, 0, bytes(10, 5)), [completeMsg(other)])));
    expect(mixed.code).toBe(Code.InvalidArgument);
    expect(mixed.message).toContain("but this stream is for job");

    const data = bytes(10, 6);
    const twice = await codeOf(poller.completeJobStream(stream(chunks(lease, 0, data), [completeMsg(lease, [{ index: 0, data }])])));
    expect(twice.code).toBe(Code.InvalidArgument);
    expect(staged()).toBe(0);
    expect(rowOf(t, lease.jobId).status).toBe("OFFERED");

    // The same lease still completes once the upload is right.
    const { job } = await poller.completeJobStream(stream(chunks(lease, 0, data), [completeMsg(lease)]));
    expect(job?.status).toBe(JobStatus.SUCCEEDED);
  }, 60_000);
});
