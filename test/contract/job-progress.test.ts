import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { JobPhase, JobProgressSchema, JobSchema, JobStatus, type Job } from "../../gen/studio/v1/job_pb.js";
import { ModelEngine, ModelFileRole } from "../../gen/studio/v1/model_pb.js";
import {
  LISTED_STATUSES,
  isActive,
  isFinal,
  jobProgressMeasure,
  phaseName,
  progressMeasure,
  progressText,
  statusFromName,
  statusName,
} from "../../contract/job-progress.js";

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
const report = (p: MessageInitShape<typeof JobProgressSchema>) => create(JobProgressSchema, p);

describe("progress measures", () => {
  test("while downloading, the worker's byte total when it has one", () => {
    const m = jobProgressMeasure(job({ phase: JobPhase.DOWNLOADING, bytesDone: 512n, bytesTotal: 2048n }));
    expect(m).toEqual({ unit: "bytes", done: 512, total: 2048 });
    expect(progressText(m!)).toBe("512 B of 2.0 KiB");
  });

  test("else the sum of approxBytes in the job's source, never run past", () => {
    expect(jobProgressMeasure(job({ phase: JobPhase.DOWNLOADING, bytesDone: 1000n }))).toEqual({ unit: "bytes", done: 1000, total: 4000 });
    expect(jobProgressMeasure(job({ phase: JobPhase.DOWNLOADING, bytesDone: 5000n }))).toEqual({ unit: "bytes", done: 4000, total: 4000 });
  });

  test("uploads count bytes too, but the source's estimate is about downloads only", () => {
    const m = progressMeasure(report({ phase: JobPhase.UPLOADING, bytesDone: 10n }), 4000n);
    expect(m).toEqual({ unit: "bytes", done: 10, total: 0 });
    expect(progressText(m!)).toBe("10 B");
  });

  test("then steps; nothing to count while loading, and nothing for jobs that are not running", () => {
    const m = jobProgressMeasure(job({ phase: JobPhase.RUNNING, step: 3, steps: 8 }));
    expect(m).toEqual({ unit: "steps", done: 3, total: 8 });
    expect(progressText(m!)).toBe("step 3 of 8");
    expect(jobProgressMeasure(job({ phase: JobPhase.LOADING }))).toBeUndefined();
    expect(jobProgressMeasure(job({ phase: JobPhase.RUNNING, step: 8, steps: 8 }, JobStatus.SUCCEEDED))).toBeUndefined();
  });

  test("the rate follows the measure: bytes per second, steps per second or seconds per step", () => {
    expect(progressText({ unit: "bytes", done: 1048576, total: 4194304 }, 2097152)).toBe("1.0 MiB of 4.0 MiB, 2.0 MiB/s");
    expect(progressText({ unit: "steps", done: 3, total: 8 }, 4)).toBe("step 3 of 8, 4.00 it/s");
    expect(progressText({ unit: "steps", done: 2, total: 8 }, 0.5)).toBe("step 2 of 8, 2.00 s/it");
  });
});

describe("status and phase names", () => {
  test("are the lower-case enum names, and read back", () => {
    expect(LISTED_STATUSES.map(statusName)).toEqual(["queued", "offered", "running", "succeeded", "failed", "cancelled"]);
    for (const s of LISTED_STATUSES) expect(statusFromName(statusName(s).toUpperCase())).toBe(s);
    expect(statusFromName("unspecified")).toBeUndefined();
    expect(statusFromName("")).toBeUndefined();
    expect(phaseName(JobPhase.DOWNLOADING)).toBe("downloading");
  });

  test("every listed status is either active or final, never both", () => {
    for (const s of LISTED_STATUSES) expect(isActive(s)).toBe(!isFinal(s));
  });
});
