import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { JobPhase, JobProgressSchema, JobSchema, JobStatus, type Job } from "../../gen/studio/v1/job_pb.js";
import { ModelEngine, ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import { formatBytes, progressOf } from "../../web/src/format.js";

function job(progress: MessageInitShape<typeof JobProgressSchema>, status = JobStatus.RUNNING): Job {
  return create(JobSchema, {
    id: "j",
    status,
    progress,
    modelSource: {
      engine: ModelEngine.SD_CPP,
      files: [
        { role: ModelFileRole.DIFFUSION_MODEL, url: "http://h/a", filename: "a", approxBytes: 3000n },
        { role: ModelFileRole.VAE, url: "http://h/b", filename: "b", approxBytes: 1000n },
        { role: ModelFileRole.LORA, url: "http://h/c", filename: "c" },
      ],
    },
  });
}

describe("progressOf", () => {
  test("while downloading, uses the worker's byte total when it has one", () => {
    expect(progressOf(job({ phase: JobPhase.DOWNLOADING, bytesDone: 512n, bytesTotal: 2048n }))).toEqual({
      value: 512,
      max: 2048,
      label: "downloading 512 B of 2.0 KiB",
    });
  });

  test("falls back to the sum of approxBytes in the job's source, and never runs past it", () => {
    expect(progressOf(job({ phase: JobPhase.DOWNLOADING, bytesDone: 1000n }))).toMatchObject({ value: 1000, max: 4000 });
    expect(progressOf(job({ phase: JobPhase.DOWNLOADING, bytesDone: 5000n }))).toMatchObject({ value: 4000, max: 4000 });
  });

  test("then shows steps, and nothing for jobs that are not running", () => {
    expect(progressOf(job({ phase: JobPhase.RUNNING, step: 3, steps: 8 }))).toEqual({
      value: 3,
      max: 8,
      label: "running step 3 of 8",
    });
    expect(progressOf(job({ phase: JobPhase.LOADING }))).toEqual({ value: 0, max: 0, label: "loading" });
    expect(progressOf(job({ phase: JobPhase.RUNNING, step: 8, steps: 8 }, JobStatus.SUCCEEDED))).toBeUndefined();
  });

  test("formats byte counts in binary units", () => {
    expect(formatBytes(undefined)).toBe("—");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1536n)).toBe("1.5 KiB");
    expect(formatBytes(6_800_000_000n)).toBe("6.3 GiB");
  });
});
