import { Database } from "bun:sqlite";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import type { Transport } from "@connectrpc/connect";
import { JobStatus, TaskSchema } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine } from "../../gen/studio/v1/model_pb.js";
import { WorkerService } from "../../gen/studio/v1/worker_service_pb.js";
import type { TestStudio } from "../helpers/test-studio.js";

/** The four wire protocols the studio serves on one port. */
export type ProtocolName = "connect-json" | "connect-binary" | "grpc-web" | "grpc";
export const PROTOCOLS: ProtocolName[] = ["connect-json", "connect-binary", "grpc-web", "grpc"];

export function transportFor(t: TestStudio, p: ProtocolName): Transport {
  if (p === "connect-json") return t.connectTransport();
  if (p === "connect-binary") return t.connectTransport({ binary: true });
  if (p === "grpc-web") return t.grpcWebTransport();
  return t.grpcTransport();
}

/**
 * A digest of every row the studio keeps (models, jobs, tokens), read through a separate read-only
 * connection: equal digests before and after a batch of refused requests mean nothing was written.
 */
export function tablesDigest(dataDir: string): { digest: string; counts: Record<string, number> } {
  const db = new Database(join(dataDir, "studio.db"), { readonly: true });
  try {
    const hash = createHash("sha256");
    const counts: Record<string, number> = {};
    for (const table of ["studioModels", "graphicsJobs", "apiTokens"]) {
      const rows = db.query(`SELECT * FROM ${table} ORDER BY rowid`).all();
      counts[table] = rows.length;
      hash.update(`${table}\u0000${JSON.stringify(rows)}\u0000`);
    }
    return { digest: hash.digest("hex"), counts };
  } finally {
    db.close();
  }
}

/** The studio still answers: grpc.health.v1 Check over Connect JSON says SERVING. */
export async function healthStatus(url: string): Promise<string> {
  const res = await fetch(`${url}/grpc.health.v1.Health/Check`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  const body = (await res.json()) as { status?: string };
  return body.status ?? `HTTP ${res.status}`;
}

/** One job in each state a wrong-state request needs, made through the public API (polling worker calls). */
export interface StateJobs {
  queued: string;
  running: { jobId: string; leaseId: string };
  succeeded: { jobId: string; leaseId: string };
  failed: { jobId: string; leaseId: string };
  cancelled: string;
}

const synthTask = (prompt: string) => create(TaskSchema, { kind: { case: "image", value: { prompt, seed: 1n } } });

/**
 * Puts jobs of the "synthetic" model into every state, one at a time so that each claim takes the
 * job just created: SUCCEEDED (claim + CompleteJob with an inline PNG), FAILED (claim + FailJob),
 * RUNNING (claim + progress), CANCELLED and QUEUED.
 */
export async function makeStateJobs(t: TestStudio, png: Uint8Array): Promise<StateJobs> {
  const jobs = t.client(JobService);
  const worker = t.client(WorkerService);
  const claimNew = async (prompt: string) => {
    const { job } = await jobs.createJob({ model: "synthetic", task: synthTask(prompt), maxAttempts: 1 });
    const { claim } = await worker.claimJob({ workerName: "abuse-poller", engines: [ModelEngine.SYNTHETIC] });
    if (claim?.jobId !== job!.id) throw new Error(`claimed ${claim?.jobId}, wanted ${job!.id}`);
    return { jobId: claim.jobId, leaseId: claim.leaseId };
  };
  const succeeded = await claimNew("will succeed");
  await worker.completeJob({
    ...succeeded,
    outputs: [{ index: 0, mimeType: "image/png", data: png, sha256: createHash("sha256").update(png).digest("hex") }],
  });
  const failed = await claimNew("will fail");
  await worker.failJob({ ...failed, error: "abuse: failed on purpose", retryable: false });
  const running = await claimNew("stays running");
  await worker.reportProgress({ ...running, progress: { phase: 3, step: 1, steps: 4 } });
  const cancelled = (await jobs.createJob({ model: "synthetic", task: synthTask("cancelled") })).job!.id;
  await jobs.cancelJob({ jobId: cancelled });
  const queued = (await jobs.createJob({ model: "z-image-turbo", task: synthTask("stays queued") })).job!.id;
  const states = await Promise.all([succeeded.jobId, failed.jobId, running.jobId, cancelled, queued].map((id) => jobs.getJob({ jobId: id })));
  const want = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.QUEUED];
  states.forEach((s, i) => {
    if (s.job?.status !== want[i]) throw new Error(`state job ${i} is ${s.job?.status}, wanted ${want[i]}`);
  });
  return { queued, running, succeeded, failed, cancelled };
}
