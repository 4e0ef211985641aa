import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { JobOutputSchema, JobProgressSchema, JobPhase, JobStatus, TaskSchema } from "../../gen/studio/v1/job_pb.js";
import {
  jobFromRow,
  leasedTaskOf,
  outputsFromJson,
  outputsToJson,
  progressFromJson,
  progressToJson,
  rememberCreatedTask,
  statusFromRow,
  statusToRow,
  taskFromJson,
  taskToJson,
  type JobRow,
} from "../../server/jobs/job-row.js";

const baseRow: JobRow = {
  id: "j1",
  model: "synthetic",
  engine: "synthetic",
  status: "QUEUED",
  priority: 5,
  task: taskToJson(create(TaskSchema, { kind: { case: "image", value: { prompt: "a cat", seed: 7n } } })),
  modelSource: JSON.stringify({ engine: "synthetic", files: [], cliDefaults: {} }),
  vramBytes: null,
  attempts: 1,
  maxAttempts: 3,
  leaseId: null,
  leaseExpiresAt: null,
  leaseWorker: null,
  error: "",
  outputs: "[]",
  progress: null,
  idempotencyKey: null,
  promotedFrom: null,
  createdAt: 1_700_000_000_000,
  updatedAt: 1_700_000_000_500,
  finishedAt: null,
};

describe("job-row", () => {
  test("status names round-trip and unknown text reads as UNSPECIFIED", () => {
    for (const s of [JobStatus.QUEUED, JobStatus.OFFERED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED])
      expect(statusFromRow(statusToRow(s))).toBe(s);
    expect(statusFromRow("BOGUS")).toBe(JobStatus.UNSPECIFIED);
    expect(() => statusToRow(JobStatus.UNSPECIFIED)).toThrow(RangeError);
  });

  test("a row reads back with task, source, times", () => {
    const job = jobFromRow(baseRow);
    expect(job.status).toBe(JobStatus.QUEUED);
    expect(job.task?.kind.case).toBe("image");
    expect(job.task?.kind.value?.seed).toBe(7n);
    expect(job.modelSource?.files).toEqual([]);
    expect(job.createTime?.seconds).toBe(1_700_000_000n);
    expect(job.finishTime).toBeUndefined();
  });

  test("NULL, malformed and invalid stored JSON never throws", () => {
    for (const modelSource of [null, "", "{not json", '{"engine":"nope","files":[]}', "[]"]) {
      const job = jobFromRow({ ...baseRow, modelSource, task: "{bad", outputs: "nope", progress: "[1" });
      expect(job.modelSource).toBeUndefined();
      expect(job.task?.kind.case).toBeUndefined();
      expect(job.outputs).toEqual([]);
      expect(job.progress).toBeUndefined();
    }
    expect(taskFromJson(null).kind.case).toBeUndefined();
  });

  test("a row just written reads back with the task its writer passes, not one parsed from the text", () => {
    const task = create(TaskSchema, { kind: { case: "image", value: { prompt: "a cat", seed: 7n } } });
    const job = jobFromRow(baseRow, { task });
    expect(job.task).toBe(task);
    expect(jobFromRow(baseRow).task).toEqual(task);
  });

  test("a created job's task is handed to its first lease as written, once; later leases parse the row", () => {
    const task = create(TaskSchema, { kind: { case: "image", value: { prompt: "a fox", seed: 3n } } });
    const row = { ...baseRow, id: "created-1", task: taskToJson(task) };
    rememberCreatedTask(row.id, task);
    expect(leasedTaskOf(row)).toBe(task);
    const again = leasedTaskOf(row);
    expect(again).not.toBe(task);
    expect(again).toEqual(task);
  });

  test("outputs and progress round-trip", () => {
    const outs = [create(JobOutputSchema, { index: 0, mimeType: "image/png", sizeBytes: 12n, sha256: "ab" })];
    expect(outputsFromJson(outputsToJson(outs))).toEqual(outs);
    expect(outputsFromJson('[{"index":1},{"index":"x"}]').map((o) => o.index)).toEqual([1]);
    const p = create(JobProgressSchema, { phase: JobPhase.RUNNING, step: 3, steps: 8 });
    expect(progressFromJson(progressToJson(p))).toEqual(p);
  });
});
