import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { JobStatus, TaskSchema, type Job, type Task } from "../../gen/studio/v1/job_pb.js";
import { JobService } from "../../gen/studio/v1/job_service_pb.js";
import { ModelEngine, ModelFileRole, ModelSourceSchema } from "../../gen/studio/v1/model_pb.js";
import { RegistryService } from "../../gen/studio/v1/registry_service_pb.js";
import type { DispatchModule } from "../../server/dispatch/index.js";
import type { JobRow } from "../../server/jobs/job-row.js";
import { sqliteOf, type TestStudio } from "../helpers/test-studio.js";

export const imageTask = (prompt = "a red fox", batchCount = 1): Task =>
  create(TaskSchema, { kind: { case: "image", value: { prompt, batchCount } } });

/** An sd-cpp source whose files carry the given digests (never downloaded by these tests). */
export const sdSource = (shas: string[]) =>
  create(ModelSourceSchema, {
    engine: ModelEngine.SD_CPP,
    files: shas.map((sha256, i) => ({
      role: i === 0 ? ModelFileRole.DIFFUSION_MODEL : ModelFileRole.VAE,
      url: `http://127.0.0.1:9/f${i}.gguf`,
      filename: `f${i}.gguf`,
      sha256,
    })),
    cliDefaults: { steps: 4 },
  });

export const sha = (c: string) => c.repeat(64).slice(0, 64);

/** n bytes of a pattern that differs by seed (outputs to upload). */
export function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/** The dispatch module of a running test studio. */
export function dispatchOf(t: TestStudio): DispatchModule {
  return t.studio.modules.find((m) => m.name === "dispatch") as DispatchModule;
}

export function rowOf(t: TestStudio, id: string): JobRow {
  return sqliteOf(t.studio).query("SELECT * FROM graphicsJobs WHERE id = ?").get(id) as JobRow;
}

export async function createJob(jobs: Client<typeof JobService>, model = "synthetic", opts: { priority?: number; batchCount?: number; maxAttempts?: number } = {}): Promise<Job> {
  const { job } = await jobs.createJob({
    model,
    task: imageTask(`job ${randomUUID()}`, opts.batchCount ?? 1),
    priority: opts.priority ?? 0,
    maxAttempts: opts.maxAttempts ?? 0,
  });
  if (job?.status !== JobStatus.QUEUED) throw new Error("job not queued");
  return job;
}

export async function createSdModel(registry: Client<typeof RegistryService>, name: string, shas: string[]) {
  await registry.createModel({ name, source: sdSource(shas) });
}

/** A controllable clock for lease expiry tests. */
export function manualClock(start = 1_800_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}
